"""The optimizer and its learning-rate schedule: AdamW with weight decay on weights only, a
smaller rate for pretrained layers, a warm-up followed by a cosine decay, and (--ema) a running
average of the weights."""

import math
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from common.model import classifier_head_name, is_pretrained

PRETRAINED_BACKBONE_LR_FACTOR = 0.3  # --backbone-lr auto with pretrained weights (bench/README.md)


class Optimization(NamedTuple):
    """What a training step needs beside the model and the batch."""

    loss_function: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler  # loss scaling for fp16; a no-op otherwise
    averaged: AveragedModel | None = None  # the running average of the weights (--ema), or None


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


def make_weight_average(model, total_steps, span):
    """An exponential moving average of the model's weights and BatchNorm statistics over about
    `span` of the run's steps (--ema; 0: none). Its decay follows from the run's length, so that one
    setting means the same for 300 steps and for 30,000."""
    if not span:
        return None
    decay = 1 - 1 / max(span * total_steps, 1)
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@contextmanager
def averaged_weights(model, averaged):
    """Within the block, `model` holds the averaged weights (to validate or save them); afterwards
    its own again, so training goes on from where it was. Without an average, nothing changes."""
    if averaged is None:
        yield
        return
    tensors = [*model.parameters(), *model.buffers()]
    own = [tensor.detach().clone() for tensor in tensors]
    with torch.no_grad():
        for tensor, average in zip(tensors, [*averaged.module.parameters(), *averaged.module.buffers()], strict=True):
            tensor.copy_(average)
    try:
        yield
    finally:
        with torch.no_grad():
            for tensor, kept in zip(tensors, own, strict=True):
                tensor.copy_(kept)
