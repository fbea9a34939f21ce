"""The tagger: a torchvision classifier whose last layer gives one logit per tag."""

import difflib
from pathlib import Path

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse as fuse_conv_batchnorm
from torchvision import models

from common.errors import UserError
from common.files import load_torch_file



def is_pretrained(weights):
    """Whether --weights starts from learned weights (imagenet or a file) rather than random ones."""
    return str(weights or "none").lower() != "none"


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


SMALL_INPUT_LIMIT = 96  # pixels: at or below this, --small-input auto adapts a ResNet to the small pictures
LAYOUT_OF_CHOICE = {"on": "layer2", "last": "layer4"}
# How a ResNet was adapted to small inputs, as the checkpoint records it ("small_input"):
#   "layer2"        the second stage's first block keeps its input's resolution (stride 1), so the
#                   last three stages work at twice the resolution (--small-input on)
#   "layer4"        only the last stage's first block keeps its input's resolution: a 4 x 4 grid at the
#                   end for about a quarter more arithmetic (--small-input last, what auto chooses)
#   "stem_maxpool"  the max-pool after the first convolution was removed, so every stage works at
#                   twice the resolution: models from earlier versions (their "stem_maxpool_removed")
UNSTRIDED_STAGES = ("layer2", "layer4")
SMALL_INPUT_LAYOUTS = (*UNSTRIDED_STAGES, "stem_maxpool")


def is_resnet(model):
    return isinstance(getattr(model, "maxpool", None), (nn.MaxPool2d, nn.Identity)) and hasattr(model, "layer2")


def small_input_layout(setting, arch, image_size, pretrained=False, fast_arithmetic=True):
    """The small-input layout a run uses (None: the network as torchvision builds it).

    A ResNet shrinks its input 32-fold; at 64 px its last layers see a 2 x 2 grid, and small
    details are gone before they get there. Keeping the last stage at the resolution of the one
    before ("last") gives a 4 x 4 grid at the end for about a quarter more arithmetic; keeping
    the second stage at the first one's ("on") doubles what the last three stages see for about
    twice the arithmetic. 'auto' chooses "last" for inputs of SMALL_INPUT_LIMIT px or less, but
    only
    - from scratch: pretrained filters learned their scales in the standard layout, and on the
      suite's fine-tuning sets unstriding gained little for 1.6 times the time;
    - with fast_arithmetic (bf16 or fp16): in fp32 on a CPU the extra arithmetic would make a
      run slower than a plain training loop, which the defaults must not be.
    "on" ranked better still on the digit mosaics, but took 1.1 to 1.2 times a plain loop's time
    on a CPU (bench/README.md)."""
    if setting == "off":
        return None
    with torch.device("meta"):  # builds the network's structure only, allocating nothing
        resnet = is_resnet(models.get_model(arch, weights=None))
    if setting in LAYOUT_OF_CHOICE and not resnet:
        raise UserError(f"--small-input {setting} is for ResNet-family networks, which {arch} is not; leave it at "
                        "auto")
    if setting in LAYOUT_OF_CHOICE:
        return LAYOUT_OF_CHOICE[setting]
    wanted = image_size <= SMALL_INPUT_LIMIT and not pretrained and fast_arithmetic
    return "layer4" if resnet and wanted else None


def apply_small_input_layout(model, layout):
    """Change a ResNet's strides or pooling in place; no layer gains or loses weights, so
    pretrained and saved weights fit either way."""
    if layout == "stem_maxpool":
        model.maxpool = nn.Identity()
    elif layout in UNSTRIDED_STAGES:
        for module in getattr(model, layout)[0].modules():  # the block's strided convolution and its shortcut's
            if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                module.stride = (1, 1)
    elif layout is not None:
        raise UserError(f"unknown small-input layout '{layout}' (known: {', '.join(SMALL_INPUT_LAYOUTS)})")


def small_input_layout_of(model):
    """The layout a built model has, for its checkpoint."""
    if not is_resnet(model):
        return None
    if isinstance(model.maxpool, nn.Identity):
        return "stem_maxpool"
    for layout in UNSTRIDED_STAGES:
        strides = [module.stride for module in getattr(model, layout)[0].modules() if isinstance(module, nn.Conv2d)]
        if (2, 2) not in strides:
            return layout
    return None


def build_model(arch, num_tags, weights="none", small_input=None):
    """A torchvision `arch` with a `num_tags`-logit head. `weights` is 'imagenet' (torchvision's
    current recommended weights, downloaded once to $TORCH_HOME), 'none', or a local file.
    small_input: a ResNet's layout for small pictures (see small_input_layout), or None."""
    if arch not in available_architectures():
        close = difflib.get_close_matches(arch, available_architectures(), n=3, cutoff=0.6)
        suggestion = f"did you mean {' or '.join(close)}? " if close else ""
        raise UserError(f"unknown --arch '{arch}': {suggestion}Choose a torchvision classifier such as resnet18, "
                        "resnet50, efficientnet_b0, convnext_tiny or vit_b_16 (python -c \"import torchvision; "
                        "print(torchvision.models.list_models(module=torchvision.models))\" lists them all)")
    weights = str(weights or "none")
    if weights.lower() == "imagenet":
        model = _load_imagenet_model(arch)
    else:
        model = models.get_model(arch, weights=None)
    replace_classifier_head(model, num_tags)
    if small_input is not None:
        if not is_resnet(model):
            raise UserError(f"--small-input on is for ResNet-family networks, which {arch} is not; leave it at auto")
        apply_small_input_layout(model, small_input)
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
    model.load_state_dict(weights_that_fit(model, path, arch), strict=False)


def weights_that_fit(model, path, arch):
    """The tensors of a weights file that fit the model; an error if too few do."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--weights {path}: no such file. Use imagenet, none, or the path of a .pth weights file.")
    state = load_torch_file(path, "--weights file")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]  # one of our checkpoints: fine-tune from an earlier tagger
    elif isinstance(state, dict) and isinstance(state.get("model"), dict) and "epochs_done" in state:
        state = state["model"]  # the resumable state of an interrupted run: start afresh from its weights
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
    return matching


def check_architecture(arch, image_size, weights):
    """Before any data is read: that `arch` exists, runs at `image_size` (on PyTorch's 'meta'
    device, which computes shapes only, in a fraction of a second), and that `weights` can be had:
    a file that fits, or ImageNet weights that are cached or can be downloaded now."""
    if arch not in available_architectures():
        build_model(arch, 1)  # raises the error that lists the choices
    with torch.device("meta"):
        network = models.get_model(arch, weights=None).eval()
    try:
        with torch.no_grad():
            network(torch.empty(1, 3, image_size, image_size, device="meta"))
    except Exception as error:  # a ViT's fixed input size, or a feature map shrunk to nothing
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"--image-size {image_size} does not suit --arch {arch} ({reason}); choose another size "
                        f"(ViTs take exactly {_vit_size(network) or 224}) or another --arch") from None
    weights = str(weights or "none")
    if weights.lower() == "imagenet":
        _load_imagenet_model(arch)  # downloads once, into torchvision's cache, or says why it cannot
    elif weights.lower() != "none":
        weights_that_fit(network, weights, arch)


def _vit_size(network):
    return getattr(network, "image_size", None)


def count_parameters(model):
    return sum(parameter.numel() for parameter in model.parameters())


def fold_batchnorm(model):
    """The eval-mode model with BatchNorm folded into the preceding convolutions (same outputs, about
    13% faster for ResNet-50 on a CPU); a model that torch.fx cannot trace is returned unchanged."""
    try:
        return fuse_conv_batchnorm(model).eval()
    except Exception:  # tracing fails on data-dependent control flow; folding is only an optimisation
        return model
