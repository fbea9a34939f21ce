"""The training pieces: losses, optimizer groups, the schedule, precision, features, calibration folding."""

import argparse
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from common.errors import UserError
from common.metrics import per_tag_average_precision
from common.model import build_model, fold_thresholds_into_head
from common.precision import cpu_has_fast_bf16, resolve_precision
from common.training import (AsymmetricLoss, backbone_lr_factor, backbone_lr_setting, extract_features,
                             head_removed, make_loss, make_optimizer, make_scheduler, parameter_groups, warmup_cosine)


def test_asymmetric_loss_without_focusing_or_clipping_is_plain_bce():
    logits, targets = torch.randn(8, 5), torch.randint(0, 2, (8, 5)).float()
    plain = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 8
    assert AsymmetricLoss(gamma_negative=0, clip=0)(logits, targets) == pytest.approx(plain.item(), rel=1e-5)


def test_asymmetric_loss_ignores_easy_negatives_but_not_positives():
    loss = AsymmetricLoss()
    easy_negative = loss(torch.tensor([[-4.0]]), torch.tensor([[0.0]]))
    hard_negative = loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]))
    missed_positive = loss(torch.tensor([[-2.0]]), torch.tensor([[1.0]]))
    assert easy_negative.item() == 0.0  # below the 0.05 probability margin
    assert hard_negative.item() > 0.1 and missed_positive.item() > 2.0
    with pytest.raises(UserError, match="bce, asl"):
        make_loss("focal")


def test_weight_decay_skips_biases_and_normalisation_layers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 3, 5, 5))
    decayed, not_decayed = parameter_groups(model, 0.05)
    assert decayed["weight_decay"] == 0.05 and not_decayed["weight_decay"] == 0.0
    assert [p.shape for p in decayed["params"]] == [(4, 3, 3, 3), (2, 36)]
    assert len(not_decayed["params"]) == 4  # conv bias, BN weight and bias, linear bias


def test_pretrained_layers_learn_at_their_share_of_the_rate_through_the_whole_schedule():
    model = build_model("resnet18", num_tags=3)
    optimizer = make_optimizer(model, 0.01, 0.05, backbone_lr_factor=0.1)
    scheduler = make_scheduler(optimizer, total_steps=20, warmup_fraction=0.1)
    head = {id(parameter) for parameter in model.fc.parameters()}
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    rate_of = {id(parameter): group["lr"] for group in optimizer.param_groups for parameter in group["params"]}
    head_rate = rate_of[id(model.fc.weight)]
    assert 0 < head_rate < 0.01  # mid-schedule
    assert {rate_of[id(p)] for p in model.fc.parameters()} == {head_rate}
    backbone_rates = {rate_of[id(p)] for p in model.parameters() if id(p) not in head}
    assert backbone_rates and all(rate == pytest.approx(head_rate * 0.1) for rate in backbone_rates)
    assert len(rate_of) == len(list(model.parameters()))  # every parameter is in exactly one group


@pytest.mark.parametrize("text, weights, factor", [("auto", "none", 1.0), ("auto", "models/pretrained.pth", 0.3),
                                                   ("AUTO", "imagenet", 0.3), ("0.1", "imagenet", 0.1),
                                                   ("0", "none", 0.0), ("1", "imagenet", 1.0)])
def test_backbone_rate_auto_slows_only_pretrained_layers(text, weights, factor):
    args = SimpleNamespace(backbone_lr=backbone_lr_setting(text), weights=weights)
    assert backbone_lr_factor(args) == factor


@pytest.mark.parametrize("text", ["1.5", "-0.1", "fast", "nan", ""])
def test_backbone_rate_outside_zero_to_one_is_refused_with_the_rule(text):
    with pytest.raises(argparse.ArgumentTypeError, match="from 0 to 1"):
        backbone_lr_setting(text)


def test_schedule_warms_up_then_decays_to_zero():
    factor = warmup_cosine(total_steps=100, warmup_steps=10)
    values = [factor(step) for step in range(101)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:]))  # never rises after the warm-up
    assert values[100] == pytest.approx(0.0, abs=1e-9)


def test_precision_auto_is_bf16_on_the_cpu_only_with_bf16_hardware():
    expected = "bf16" if cpu_has_fast_bf16() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(UserError, match="fp16 is for GPUs"):
        resolve_precision("fp16", torch.device("cpu"))


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


def test_features_come_from_the_layer_below_the_head(shapes_dataset):
    from torch.utils.data import DataLoader

    from common.dataset import ImageTagDataset, UnreadableImages, collate_readable, scan_folder
    from common.images import eval_transform

    root, _ = shapes_dataset
    images = scan_folder(root / "train").images[:5]
    loader = DataLoader(ImageTagDataset(images, eval_transform(32), torch.zeros(5, 3)), batch_size=2,
                        collate_fn=collate_readable)
    model = build_model("resnet18", 3, "none")
    features, targets = extract_features(model, loader, torch.device("cpu"), "fp32", UnreadableImages())
    assert features.shape == (5, 512) and targets.shape == (5, 3)
    assert isinstance(model.fc, nn.Linear)  # the head is back in place afterwards
    with torch.no_grad(), head_removed(model):  # BatchNorm folded for speed: the same features
        unfolded = torch.cat([model.eval()(batch.images) for batch in loader])
    assert torch.allclose(features, unfolded, atol=1e-4) and not torch.equal(features, torch.zeros_like(features))



def test_the_optimizer_is_adamw_with_decay_on_weights_only_and_takes_steps():
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    optimizer = make_optimizer(model, 0.01, 0.05)
    assert isinstance(optimizer, torch.optim.AdamW)
    before = [parameter.detach().clone() for parameter in model.parameters()]
    model(torch.randn(8, 4)).pow(2).sum().backward()
    optimizer.step()
    assert all(not torch.equal(old, new) for old, new in zip(before, model.parameters()))
