"""The tagger: a torchvision classifier whose last layer gives one logit per tag."""

from pathlib import Path

import torch
from torch import nn
from torchvision import models

from common.errors import UserError
from common.files import load_torch_file

DEFAULT_ARCH = "resnet50"
WEIGHT_CHOICES = "imagenet | none | PATH"


def available_architectures():
    return sorted(models.list_models(module=models))


def classifier_head_name(model):
    """The name of the network's last Linear layer, which produces the class (or tag) logits.

    Every torchvision classifier ends in one, whatever it is called (`fc` in ResNet and RegNet,
    `classifier.1` in EfficientNet, `classifier.2` in ConvNeXt, `heads.head` in ViT, `head` in
    Swin), so finding the last one covers them all without a table per family.
    """
    linear_names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear_names:
        raise UserError(f"{type(model).__name__} has no Linear classifier layer to replace; choose another --arch")
    return linear_names[-1]


def replace_classifier_head(model, num_tags):
    """Swap the network's last Linear layer for a fresh one with `num_tags` outputs."""
    old_head = model.get_submodule(classifier_head_name(model))
    set_submodule(model, classifier_head_name(model), nn.Linear(old_head.in_features, num_tags))
    return model


def set_submodule(model, name, module):
    *parent_path, attribute = name.split(".")
    parent = model.get_submodule(".".join(parent_path)) if parent_path else model
    setattr(parent, attribute, module)


@torch.no_grad()
def fold_thresholds_into_head(model, thresholds):
    """Shift each tag's logit so that its calibrated threshold lands on probability 0.5.

    sigmoid(z - logit(t)) >= 0.5 exactly when sigmoid(z) >= t, so the model's decisions at 0.5
    become the calibrated decisions, and each tag's ranking (hence its average precision) is
    unchanged. Anything that reads the model's outputs, an exported ONNX file included, then
    gets calibrated tags without knowing about thresholds.
    """
    head = model.get_submodule(classifier_head_name(model))
    thresholds = torch.as_tensor(thresholds, dtype=head.bias.dtype, device=head.bias.device).clamp(1e-4, 1 - 1e-4)
    head.bias -= torch.logit(thresholds)


SMALL_INPUT_LIMIT = 96  # pixels: at or below this, --stem-maxpool auto removes the stem's max-pool


def has_stem_maxpool(model):
    return isinstance(getattr(model, "maxpool", None), nn.MaxPool2d)


def uses_stem_maxpool(setting, arch, image_size):
    """Whether a ResNet keeps the max-pool of its stem. A ResNet shrinks its input 32-fold; at
    64 px that leaves a 2 x 2 grid for the last layers to look at. Without the stem's max-pool the
    grid is 4 x 4 and every layer sees twice the detail, for about 4x the arithmetic: on
    bench/quality.py --hard that was 0.892 mAP against 0.771 (README). 'auto' removes it for
    inputs of SMALL_INPUT_LIMIT px or less, where that arithmetic is still cheap."""
    if setting == "auto":
        with torch.device("meta"):  # builds the network's structure only, allocating nothing
            return not (image_size <= SMALL_INPUT_LIMIT and has_stem_maxpool(models.get_model(arch, weights=None)))
    return setting == "on"


def stem_maxpool_removed(model):
    return isinstance(getattr(model, "maxpool", None), nn.Identity)


def build_model(arch, num_tags, weights="none", stem_maxpool=True):
    """A torchvision `arch` with a `num_tags`-logit head. `weights` is 'imagenet' (torchvision's
    current recommended weights, downloaded once to $TORCH_HOME), 'none', or a local file.
    stem_maxpool=False removes a ResNet's max-pool after its first convolution (see
    uses_stem_maxpool); the max-pool has no weights, so any weights still fit."""
    if arch not in available_architectures():
        raise UserError(f"unknown --arch '{arch}'. Choose a torchvision classifier such as resnet18, resnet50, "
                        f"efficientnet_b0, convnext_tiny or vit_b_16 (all: {', '.join(available_architectures())})")
    weights = str(weights or "none")
    if weights.lower() == "imagenet":
        model = _load_imagenet_model(arch)
    else:
        model = models.get_model(arch, weights=None)
    replace_classifier_head(model, num_tags)
    if not stem_maxpool:
        if not has_stem_maxpool(model):
            raise UserError(f"--stem-maxpool off is for ResNet-family networks, which {arch} is not; "
                            "leave it at auto")
        model.maxpool = nn.Identity()
    if weights.lower() not in ("imagenet", "none"):
        load_backbone_weights(model, weights, arch)
    return model


def _load_imagenet_model(arch):
    imagenet_weights = models.get_model_weights(arch).DEFAULT
    try:
        return models.get_model(arch, weights=imagenet_weights)
    except Exception as error:  # no network, proxy, full disk, corrupt partial download...
        file_name = imagenet_weights.url.rsplit("/", 1)[-1]
        raise UserError(
            f"could not get the ImageNet weights for {arch} ({type(error).__name__}: {error}). Either train from "
            f"scratch with --weights none, or download {imagenet_weights.url} yourself and pass --weights "
            f"PATH/{file_name} (or place it in $TORCH_HOME/hub/checkpoints/, default ~/.cache/torch/hub/checkpoints/)."
        ) from error


def load_backbone_weights(model, path, arch):
    """Start from a local weights file: a torchvision state dict, or one of our own checkpoints.
    Tensors whose shape differs from the model (the old classifier head) are left fresh."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--weights {path}: no such file. Use imagenet, none, or the path of a .pth weights file.")
    state = load_torch_file(path, "--weights file")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]  # one of our checkpoints: fine-tune from an earlier tagger
    if not isinstance(state, dict):
        raise UserError(f"--weights {path} does not hold a state dict (a mapping of parameter names to tensors).")
    own = model.state_dict()
    matching = {name: tensor for name, tensor in state.items()
                if name in own and isinstance(tensor, torch.Tensor) and tensor.shape == own[name].shape}
    head_names = {name for name in own if name.startswith(classifier_head_name(model) + ".")}
    backbone_names = set(own) - head_names
    if len(set(matching) & backbone_names) < 0.9 * len(backbone_names):
        raise UserError(f"--weights {path} does not fit --arch {arch}: only {len(matching)} of {len(own)} tensors "
                        "match. Pass the --arch the weights were made for.")
    model.load_state_dict(matching, strict=False)


def count_parameters(model):
    return sum(parameter.numel() for parameter in model.parameters())
