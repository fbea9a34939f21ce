"""The optimizer and its learning-rate schedule: AdamW with weight decay on weights only, a
smaller rate for pretrained layers, and a warm-up followed by a cosine decay."""

import math
from typing import NamedTuple

import torch

from common.model import classifier_head_name, is_pretrained

PRETRAINED_BACKBONE_LR_FACTOR = 0.3  # --backbone-lr auto with pretrained weights (bench/README.md)


class Optimization(NamedTuple):
    """What a training step needs beside the model and the batch."""

    loss_function: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler  # loss scaling for fp16; a no-op otherwise


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
