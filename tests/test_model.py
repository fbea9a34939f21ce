"""Any torchvision classifier becomes a tagger with one output per tag."""

import numpy as np
import pytest
import torch
from torchvision import models

from common.checkpoint import make_checkpoint, model_from_checkpoint
from common.errors import UserError
from common.transforms import IMAGENET_MEAN, IMAGENET_STD
from common.metrics import per_tag_average_precision
from common.model import build_model, fold_thresholds_into_head, small_input_layout


# Building and running the larger families takes seconds each: they are in the slow tier.
@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", *[
    pytest.param(arch, marks=pytest.mark.slow) for arch in ("resnet34", "efficientnet_b0", "regnet_y_400mf",
                                                            "convnext_tiny", "vit_b_16", "swin_t", "densenet121")]])
def test_every_family_gets_a_head_with_one_logit_per_tag(arch):
    model = build_model(arch, 7, "none").eval()
    size = 224 if arch.startswith(("vit", "swin")) else 64
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 7)


@pytest.mark.parametrize("arch, blocks", [("resnet50", 16), pytest.param("resnet101", 33, marks=pytest.mark.slow),
                                          pytest.param("resnet152", 50, marks=pytest.mark.slow)])
def test_deeper_resnets_are_built_by_name_with_a_head_for_the_tags(arch, blocks):
    model = build_model(arch, 3, "none").eval()
    assert sum(len(getattr(model, f"layer{stage}")) for stage in range(1, 5)) == blocks  # the depth asked for
    assert (model.fc.in_features, model.fc.out_features) == (2048, 3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_unknown_architecture_lists_the_choices():
    with pytest.raises(UserError, match="resnet18"):
        build_model("resnet9000", 3)


def test_local_weights_file_is_loaded_except_the_head(tmp_path):
    source = models.resnet18()
    torch.nn.init.constant_(source.conv1.weight, 0.125)
    torch.save(source.state_dict(), tmp_path / "backbone.pth")
    model = build_model("resnet18", 4, str(tmp_path / "backbone.pth"))
    assert torch.all(model.conv1.weight == 0.125)
    assert model.fc.out_features == 4


def test_weights_for_another_architecture_are_refused(tmp_path):
    torch.save(models.mobilenet_v3_small().state_dict(), tmp_path / "other.pth")
    with pytest.raises(UserError, match="does not fit --arch resnet18"):
        build_model("resnet18", 4, str(tmp_path / "other.pth"))
    with pytest.raises(UserError, match="no such file"):
        build_model("resnet18", 4, str(tmp_path / "missing.pth"))


def test_imagenet_weights_come_from_torchvisions_cache(tmp_path, monkeypatch):
    """No download here: a locally made file sits where torchvision keeps downloaded weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    source = models.resnet18()
    torch.nn.init.constant_(source.conv1.weight, 0.25)
    file_name = models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    torch.save(source.state_dict(), cache / file_name)
    model = build_model("resnet18", 5, "imagenet")
    assert torch.all(model.conv1.weight == 0.25) and model.fc.out_features == 5


def test_failed_imagenet_download_suggests_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    file_name = models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    (tmp_path / "hub" / "checkpoints" / file_name).write_bytes(b"a corrupt partial download")
    with pytest.raises(UserError, match="--weights none"):
        build_model("resnet18", 5, "imagenet")


def test_small_inputs_sharpen_a_resnets_last_stages_only_where_it_pays():
    assert small_input_layout("auto", "resnet18", 64) == "layer4"  # 64 px: a 4 x 4 grid at the end instead of 2 x 2
    assert small_input_layout("last", "resnet50", 224) == "layer4"
    assert small_input_layout("auto", "resnet50", 224) is None
    assert small_input_layout("auto", "efficientnet_b0", 64) is None  # not a ResNet: left as it is
    assert small_input_layout("off", "resnet18", 64) is None and small_input_layout("on", "resnet50", 224) == "layer2"
    # auto leaves pretrained filters in the layout they learned in, and fp32 runs at their usual cost
    assert small_input_layout("auto", "resnet18", 64, pretrained=True) is None
    assert small_input_layout("auto", "resnet18", 64, fast_arithmetic=False) is None
    assert small_input_layout("on", "resnet18", 64, pretrained=True, fast_arithmetic=False) == "layer2"
    with pytest.raises(UserError, match="ResNet-family"):
        small_input_layout("on", "efficientnet_b0", 64)


@pytest.mark.parametrize("arch, layout", [("resnet18", "layer2"), ("resnet18", "layer4"),
                                          pytest.param("resnet50", "layer2", marks=pytest.mark.slow)])
def test_a_small_input_layout_changes_the_outputs_not_the_weights_and_survives_the_checkpoint(arch, layout):
    model = build_model(arch, 3, "none", small_input=layout).eval()
    standard = build_model(arch, 3, "none")
    assert model.state_dict().keys() == standard.state_dict().keys()  # the same weights fit
    with torch.no_grad():
        features = torch.nn.Sequential(*list(model.children())[:-2])(torch.randn(1, 3, 64, 64))
    assert features.shape[-2:] == (4, 4)
    checkpoint = make_checkpoint(model, arch=arch, tags=["a", "b", "c"], thresholds=[0.5] * 3,
                                 image_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD, settings={}, metrics={},
                                 epoch=1)
    assert checkpoint["small_input"] == layout
    rebuilt = model_from_checkpoint(checkpoint, torch.device("cpu"))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(images), model(images))  # the layout changes outputs, not weights
        standard.load_state_dict(model.state_dict())
        assert not torch.allclose(standard.eval()(images), model(images))


def test_a_model_from_before_the_layout_had_a_name_still_loads_with_its_stem_maxpool_removed():
    model = build_model("resnet18", 2, "none", small_input="stem_maxpool").eval()
    checkpoint = make_checkpoint(model, arch="resnet18", tags=["a", "b"], thresholds=[0.5] * 2, image_size=64,
                                 mean=IMAGENET_MEAN, std=IMAGENET_STD, settings={}, metrics={}, epoch=1)
    del checkpoint["small_input"]
    checkpoint["stem_maxpool_removed"] = True  # how version 1 files of the previous release said it
    rebuilt = model_from_checkpoint(checkpoint, torch.device("cpu"))
    assert isinstance(rebuilt.maxpool, torch.nn.Identity)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(images), model(images))


def test_folding_thresholds_moves_each_decision_to_one_half_without_changing_rankings():
    torch.manual_seed(0)
    model = build_model("resnet18", 3, "none").eval()
    images = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        before = torch.sigmoid(model(images)).numpy()
    thresholds = np.quantile(before, 0.5, axis=0)  # a threshold in the middle of each tag's scores
    fold_thresholds_into_head(model, thresholds)
    with torch.no_grad():
        after = torch.sigmoid(model(images)).numpy()
    assert np.array_equal(after >= 0.5, before >= thresholds)
    targets = np.random.default_rng(0).integers(0, 2, (16, 3))
    assert np.allclose(per_tag_average_precision(targets, after), per_tag_average_precision(targets, before))
