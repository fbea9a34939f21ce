"""One pass over a loader: a training epoch (forward, loss, backward, step) and a prediction
pass that returns every image's probabilities."""

import math

import torch

from common.distributed import all_agree, gather_rows, sum_across_processes
from common.images import normalize_batch, random_flips
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


def train_one_epoch(model, loader, loss_function, optimizer, scheduler, scaler, device, precision, unreadable,
                    description):
    """One pass over the loader; returns (mean training loss, number of images used), over every
    process under torchrun."""
    model.train()
    total_loss, total_images = 0.0, 0
    for step, batch in enumerate(progress(loader, description)):
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


@torch.inference_mode()
def predict(model, loader, device, precision, unreadable, loss_function=None):
    """(mean loss or NaN, targets, probabilities) over a labelled loader, as NumPy arrays. Under
    torchrun each process predicts its share and every process gets all of them, so the metrics
    are those of one process over the whole set."""
    model.eval()
    total_loss, all_targets, all_probabilities = 0.0, [], []
    for batch in readable_batches(loader, device, unreadable):
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
