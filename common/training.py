"""The pieces of a training run that train.py, the notebooks and the benchmarks share:
loss functions, the optimizer and its schedule, and cached backbone features."""

import argparse
import contextlib
import math

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm  # widgets in notebooks, text bars in terminals

from common.distributed import all_agree, gather_rows, sum_across_processes
from common.errors import UserError
from common.model import classifier_head_name, fold_batchnorm, is_pretrained, set_submodule
from common.precision import autocast

LOSS_CHOICES = ("bce", "asl")
PRETRAINED_BACKBONE_LR_FACTOR = 0.3  # --backbone-lr auto with pretrained weights (bench/README.md)


class AsymmetricLoss(nn.Module):
    """Asymmetric Loss (Ridnik et al., ICCV 2021) for multi-label data, where most image-tag
    pairs are negatives: easy negatives are down-weighted (focusing, gamma_negative) and very
    unlikely ones ignored (probability shifting, clip), while positives keep plain BCE."""

    def __init__(self, gamma_negative=4.0, gamma_positive=0.0, clip=0.05):
        super().__init__()
        self.gamma_negative, self.gamma_positive, self.clip = gamma_negative, gamma_positive, clip

    def forward(self, logits, targets):
        logits = logits.float()
        probability = torch.sigmoid(logits)
        negative_probability = probability
        if self.clip:
            negative_probability = (probability - self.clip).clamp(min=0)
        # log(p) and log(1 - p_shifted), computed stably from the logits where possible
        loss_positive = targets * nn.functional.logsigmoid(logits)
        loss_negative = (1 - targets) * torch.log((1 - negative_probability).clamp(min=1e-8))
        if self.gamma_negative or self.gamma_positive:
            with torch.no_grad():  # the focusing weights are constants, as in the paper's implementation
                weight_positive = (1 - probability).pow(self.gamma_positive)
                weight_negative = negative_probability.pow(self.gamma_negative)
            loss_positive = loss_positive * weight_positive
            loss_negative = loss_negative * weight_negative
        return -(loss_positive + loss_negative).sum() / logits.shape[0]


def make_loss(name):
    if name == "bce":
        return nn.BCEWithLogitsLoss()
    if name == "asl":
        return AsymmetricLoss()
    raise UserError(f"unknown --loss '{name}': choose one of {', '.join(LOSS_CHOICES)}")


def parameter_groups(model, weight_decay, backbone_lr_factor=1.0):
    """Weight decay for weight matrices and convolution kernels only: decaying the biases and the
    normalisation layers' scales only pulls them away from useful values. With a
    backbone_lr_factor below 1, every layer but the new last one learns that much more slowly
    ("lr_factor" of its group), so pretrained filters are adjusted rather than overwritten."""
    head = classifier_head_name(model)
    head_prefix = head + "." if head else ""  # "": the model is the head (--freeze-backbone trains it alone)
    groups = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            factor = 1.0 if name.startswith(head_prefix) else backbone_lr_factor
            decay = weight_decay if parameter.ndim > 1 else 0.0
            groups.setdefault((factor, decay), []).append(parameter)
    return [{"params": params, "weight_decay": decay, "lr_factor": factor}
            for (factor, decay), params in sorted(groups.items(), reverse=True)]


def backbone_lr_setting(text):
    """The --backbone-lr value: 'auto' or a share of --lr from 0 (frozen) to 1 (the same)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not auto or a number from 0 to 1 (a share of --lr)")
    return share


def backbone_lr_factor(args):
    """--backbone-lr as a number: 'auto' is PRETRAINED_BACKBONE_LR_FACTOR with pretrained weights
    and 1 from scratch, where there is nothing to preserve."""
    if args.backbone_lr != "auto":
        return float(args.backbone_lr)
    return PRETRAINED_BACKBONE_LR_FACTOR if is_pretrained(args.weights) else 1.0


def make_optimizer(model, learning_rate, weight_decay, backbone_lr_factor=1.0):
    """AdamW, fused into one kernel where PyTorch has one (CUDA, and the CPU since 2.4): a ResNet-18
    step of the optimizer took 8 ms against 25 ms unfused on a 2-core CPU."""
    groups = parameter_groups(model, weight_decay, backbone_lr_factor)
    for group in groups:
        group["lr"] = learning_rate * group["lr_factor"]
    if next(model.parameters()).device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, lr=learning_rate, fused=True)
        except RuntimeError:  # an older PyTorch without a fused CPU kernel
            pass
    return torch.optim.AdamW(groups, lr=learning_rate)


def warmup_cosine(total_steps, warmup_steps):
    """Learning-rate factor per step: a linear rise over the warm-up, then a cosine decay to zero."""

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_scheduler(optimizer, total_steps, warmup_fraction):
    warmup_steps = max(1, round(total_steps * warmup_fraction))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_steps))


@contextlib.contextmanager
def head_removed(model):
    """Temporarily make the model return its features instead of tag logits."""
    name = classifier_head_name(model)
    head = model.get_submodule(name)
    set_submodule(model, name, nn.Identity())
    try:
        yield head
    finally:
        set_submodule(model, name, head)


@torch.inference_mode()
def extract_features(model, loader, device, precision, unreadable):
    """Run the frozen backbone once over a loader; returns (features, targets) on the CPU."""
    model.eval()
    all_features, all_targets = [], []
    with head_removed(model):  # the frozen backbone never changes, so folding its BatchNorm is exact
        backbone = fold_batchnorm(model).to(memory_format=torch.channels_last)
    for batch in loader:
        unreadable.add(loader.dataset, batch.unreadable)
        if batch.images is None:
            continue
        with autocast(device, precision):
            features = backbone(to_device(batch.images, device))
        all_features.append(features.float().cpu())
        all_targets.append(batch.targets)
    if not all_features:
        return None, None
    return torch.cat(all_features), torch.cat(all_targets)


class CachedFeatures(Dataset):
    """Backbone features computed once, served like images so the same training loop runs on them."""

    def __init__(self, features, targets):
        self.features, self.targets = features, targets
        self.paths = []  # features are never unreadable

    def __len__(self):
        return len(self.features)

    def __getitem__(self, position):
        return self.features[position], self.targets[position], position, None


def to_device(images, device):
    """Non-blocking copy; image batches go channels-last on CUDA and the CPU, where convolutions run
    faster so (oneDNN on the CPU: 83 against 100 ms per bf16 ResNet-18 step at 64 px)."""
    images = images.to(device, non_blocking=True)
    if device.type in ("cuda", "cpu") and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def full_batches(loader):
    """Training steps per epoch: a last, partial batch is left out (it trains worse, measured on
    bench/quality.py, and can hold a single image, which BatchNorm cannot train on), unless there
    is nothing else. Under torchrun the sampler holds this process's share of the images."""
    return max(len(loader.sampler) // loader.batch_size, 1)


def train_one_epoch(model, loader, loss_function, optimizer, scheduler, scaler, device, precision, unreadable,
                    description):
    """One pass over the loader; returns (mean training loss, number of images used), over every
    process under torchrun."""
    model.train()
    total_loss, total_images = 0.0, 0
    for step, batch in enumerate(tqdm(loader, desc=description, leave=False, unit="batch")):
        unreadable.add(loader.dataset, batch.unreadable)
        usable = step < full_batches(loader) and batch.images is not None and len(batch.images) >= 2
        if not all_agree(usable):
            continue  # a last, partial batch, or one that unreadable files left too small for BatchNorm
        targets = batch.targets.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(to_device(batch.images, device))
        loss = loss_function(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total_loss += loss.item() * len(targets)
        total_images += len(targets)
    total_loss, total_images = sum_across_processes([total_loss, total_images])
    return total_loss / max(total_images, 1), int(total_images)


@torch.inference_mode()
def predict(model, loader, device, precision, unreadable, loss_function=None):
    """(mean loss or NaN, targets, probabilities) over a labelled loader, as NumPy arrays. Under
    torchrun each process predicts its share and every process gets all of them, so the metrics
    are those of one process over the whole set."""
    model.eval()
    total_loss, all_targets, all_probabilities = 0.0, [], []
    for batch in loader:
        unreadable.add(loader.dataset, batch.unreadable)
        if batch.images is None:
            continue
        with autocast(device, precision):
            logits = model(to_device(batch.images, device)).float()
        targets = batch.targets.to(device)
        if loss_function is not None:
            total_loss += loss_function(logits, targets).item() * len(targets)
        all_targets.append(batch.targets)
        all_probabilities.append(torch.sigmoid(logits).cpu())
    targets = torch.cat(all_targets).numpy() if all_targets else None
    probabilities = torch.cat(all_probabilities).numpy() if all_targets else None
    targets, probabilities = gather_rows(targets), gather_rows(probabilities)
    if targets is None:
        return math.nan, None, None
    total_loss, = sum_across_processes([total_loss])
    loss = total_loss / len(targets) if loss_function is not None else math.nan
    return loss, targets, probabilities
