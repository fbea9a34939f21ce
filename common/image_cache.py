"""Training images decoded once and kept in memory, so that later epochs decode nothing.

Decoding and resizing a file costs the same in every epoch, and on a CPU it competes with the
network for the same cores. When the decoded pixels of a data set fit in the memory budget
(--cache-mb), the training and validation images are decoded once, in the loader's worker
processes, and kept as one uint8 tensor at the training size: 12 KB per image at 64 px,
150 KB at 224 px. Each epoch then only normalises them (and augments them, when asked).
"""

import copy

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from common.dataset import Batch, ImageTagDataset, collate_readable
from common.transforms import decode_transform
from common.progress import progress

BYTES_PER_MB = 2 ** 20


def cache_size_mb(image_count, image_size):
    """Memory that image_count decoded RGB images at image_size x image_size take, in MB."""
    return image_count * 3 * image_size * image_size / BYTES_PER_MB


class DecodedImages(Dataset):
    """An ImageTagDataset whose pictures were decoded once: serves the same samples, with
    `transform` (normalising, perhaps augmenting) applied to the kept uint8 pixels. An image
    that could not be read is served as unreadable every time, like the files it stands for."""

    def __init__(self, images, pixels, reasons, transform):
        self.paths, self.targets = images.paths, images.targets
        self.images, self.pixels, self.reasons, self.transform = images, pixels, reasons, transform

    def __len__(self):
        return len(self.pixels)

    def __getitem__(self, position):
        reason = self.reasons.get(position)
        if reason is not None:
            return None, None, position, reason
        return self.transform(self.pixels[position]), self.images.target(position), position, None

    def subset(self, positions, transform):
        """The images at `positions`, sharing nothing but copies of their kept pixels (the label
        audit's folds take their images from one decoding of the whole folder)."""
        images = ImageTagDataset([self.paths[position] for position in positions], self.images.transform,
                                 None if self.targets is None else self.targets[positions],
                                 decode_size=self.images.decode_size)
        reasons = {new: self.reasons[old] for new, old in enumerate(positions) if old in self.reasons}
        return DecodedImages(images, self.pixels[torch.as_tensor(positions, dtype=torch.long)], reasons, transform)

    def rows(self, start, stop, transform):
        """The images from `start` to `stop`, sharing this one's kept pixels (no copy)."""
        images = ImageTagDataset(self.paths[start:stop], self.images.transform,
                                 None if self.targets is None else self.targets[start:stop],
                                 decode_size=self.images.decode_size)
        reasons = {old - start: reason for old, reason in self.reasons.items() if start <= old < stop}
        return DecodedImages(images, self.pixels[start:stop], reasons, transform)

    def __getitems__(self, positions):
        """A whole batch at once, which the DataLoader asks for instead of image by image: without
        augmentation, one gather of the kept pixels and targets and nothing per image (collate_readable
        passes the Batch through); with augmentation, image by image, as each is changed differently."""
        if not isinstance(self.transform, v2.Identity):
            return [self[position] for position in positions]
        readable = [position for position in positions if position not in self.reasons]
        unreadable = [(position, self.reasons[position]) for position in positions if position in self.reasons]
        if not readable:
            return Batch(None, None, torch.empty(0, dtype=torch.long), unreadable)
        index = torch.tensor(readable, dtype=torch.long)
        return Batch(self.pixels[index], self.images.targets_of(readable), index, unreadable)


def decode_into_memory(images: ImageTagDataset, image_size, transform, workers, description="decoding images"):
    """Decode every image of `images` once, in `workers` processes; returns a DecodedImages that
    applies `transform` to the kept pixels."""
    decoding = copy.copy(images)  # the same (packed) paths, read without the epoch-to-epoch transform
    decoding.transform, decoding.decode_size, decoding.targets = decode_transform(image_size), image_size, None
    pixels = torch.zeros((len(decoding), 3, image_size, image_size), dtype=torch.uint8)
    reasons = {}
    # its own generator: decoding draws nothing from the global one, so the model's initial weights
    # that follow depend on --seed alone, however the images were decoded
    loader = DataLoader(decoding, batch_size=64, num_workers=workers, collate_fn=collate_readable,
                        generator=torch.Generator())
    for batch in progress(loader, description):
        reasons.update(batch.unreadable)
        if batch.images is not None:
            pixels[batch.indices] = batch.images
    return DecodedImages(images, pixels, reasons, transform)
