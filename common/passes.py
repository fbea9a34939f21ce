"""One pass over a loader: a training epoch (forward, loss, backward, step) and a prediction
pass that returns every image's probabilities."""

import itertools
import math
from typing import NamedTuple

import numpy as np
import torch

from common.distributed import all_agree, gather_objects, gather_rows, process_rank, sum_across_processes
from common.transforms import normalize_batch, random_flips
from common.jpeg_decode import decode_on_device
from common.precision import autocast
from common.progress import progress


def to_device(images, device):
    """Non-blocking copy, uint8 pixels normalised on arrival (normalize_batch); image batches go
    channels-last on CUDA and the CPU, where convolutions run faster so (oneDNN on the CPU: 83
    against 100 ms per bf16 ResNet-18 step at 64 px)."""
    images = normalize_batch(images.to(device, non_blocking=True))
    if device.type in ("cuda", "cpu") and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def full_batches(loader):
    """Training steps per epoch: a last, partial batch is left out (it trains worse, measured on
    bench/quality.py, and can hold a single image, which BatchNorm cannot train on), unless there
    is nothing else. Under torchrun the sampler holds this process's share of the images."""
    return max(len(loader.sampler) // loader.batch_size, 1)


def train_one_epoch(model, loader, optimization, runtime, unreadable, description, steps=None):
    """One pass over the loader, or its first `steps` batches, with `optimization` (an Optimization:
    loss, optimizer, schedule, scaler, weight average) on `runtime`'s device and precision (a Runtime); returns (mean
    training loss, number of images used), over every process under torchrun."""
    loss_function, optimizer, scheduler, scaler, averaged = optimization
    device, precision = runtime.device, runtime.precision
    model.train()
    total_loss, total_images = 0.0, 0
    batches = loader if steps is None else itertools.islice(loader, steps)
    for step, batch in enumerate(progress(batches, description, total=steps)):
        batch = decode_on_device(batch, loader.dataset, device)
        unreadable.add(loader.dataset, batch.unreadable)
        usable = step < full_batches(loader) and batch.images is not None and len(batch.images) >= 2
        if not all_agree(usable):
            continue  # a last, partial batch, or one that unreadable files left too small for BatchNorm
        targets = batch.targets.to(device, non_blocking=True)
        with autocast(device, precision):
            images = to_device(batch.images, device)
            if getattr(loader.dataset, "flip_on_device", False):
                images = random_flips(images)
            logits = model(images)
        loss = loss_function(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if averaged is not None:  # (under torchrun, the module inside DistributedDataParallel)
            averaged.update_parameters(getattr(model, "module", model))
        total_loss += loss.item() * len(targets)
        total_images += len(targets)
    total_loss, total_images = sum_across_processes([total_loss, total_images])
    return total_loss / max(total_images, 1), int(total_images)


def readable_batches(loader, device, unreadable):
    """The loader's batches, decoded on the device where they need it (--decode gpu), with their
    unreadable images reported; a batch left with no image is skipped."""
    for batch in loader:
        batch = decode_on_device(batch, loader.dataset, device)
        unreadable.add(loader.dataset, batch.unreadable)
        if batch.images is not None:
            yield batch


class Predictions(NamedTuple):
    loss: float  # the mean loss, or NaN without a loss function
    targets: np.ndarray | None  # None when no image could be read
    probabilities: np.ndarray | None
    positions: np.ndarray | None  # each row's position in the loader's list of images (unreadable ones are missing)


@torch.inference_mode()
def predict(model, loader, device, precision, unreadable, loss_function=None):
    """Predictions over a labelled loader, as NumPy arrays. Under torchrun each process predicts its
    consecutive share and every process gets all of them, so the metrics are those of one process
    over the whole set, and positions count from the start of the whole list."""
    model.eval()
    total_loss, all_targets, all_probabilities, all_positions = 0.0, [], [], []
    # where this process's share begins (cached features have a row per readable image only)
    start = sum(gather_objects(getattr(loader.dataset, "source_length", len(loader.dataset)))[:process_rank()])
    for batch in readable_batches(loader, device, unreadable):
        with autocast(device, precision):
            logits = model(to_device(batch.images, device)).float()
        targets = batch.targets.to(device)
        if loss_function is not None:
            total_loss += loss_function(logits, targets).item() * len(targets)
        all_targets.append(batch.targets)
        all_probabilities.append(torch.sigmoid(logits).cpu())
        all_positions.append(batch.indices + start)
    found = bool(all_targets)
    targets, probabilities, positions = (gather_rows(torch.cat(parts).numpy() if found else None)
                                         for parts in (all_targets, all_probabilities, all_positions))
    if targets is None:
        return Predictions(math.nan, None, None, None)
    total_loss, = sum_across_processes([total_loss])
    loss = total_loss / len(targets) if loss_function is not None else math.nan
    return Predictions(loss, targets, probabilities, positions)
