"""The PyTorch dataset of a run's images and targets, and the collate function that leaves
unreadable images out of a batch and reports them instead of stopping the run."""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse
import torch
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm  # widgets in notebooks, text bars in terminals

from common.errors import UserError
from common.images import describe_read_error, open_image


def no_readable_images(folder):
    return UserError(f"none of the training images in {folder} could be read. "
                     "Check them with `python prepare.py check`.")


class Batch(NamedTuple):
    images: torch.Tensor | None  # None when every image of the batch was unreadable
    targets: torch.Tensor | None  # None for inference
    indices: torch.Tensor  # positions in the dataset of the readable images
    unreadable: list  # (position, reason) for each image that could not be read


class PackedPaths(Sequence):
    """A read-only list of paths, packed into one byte string and one NumPy array.

    A list of a million Path objects takes about 400 MB, and each DataLoader worker process
    slowly ends up with its own copy of it: merely reading a Python object writes its reference
    count, which un-shares the memory page it sits on (PyTorch issue #13246). Packed, the paths
    take their length in bytes (42 MB per million), and reading them writes nothing.
    """

    def __init__(self, paths):
        encoded = [os.fsencode(path) for path in paths]
        self._packed = b"".join(encoded)
        self._ends = np.cumsum([len(name) for name in encoded], dtype=np.int64)

    def __len__(self):
        return len(self._ends)

    def __getitem__(self, position):
        if isinstance(position, slice):
            return [self[number] for number in range(*position.indices(len(self)))]
        position = range(len(self))[position]  # negative positions, and IndexError past the end
        start = int(self._ends[position - 1]) if position else 0
        return Path(os.fsdecode(self._packed[start:int(self._ends[position])]))


class ImageTagDataset(Dataset):
    """Images and, when training, their multi-hot targets.

    An unreadable image does not raise: it comes back as a (None, None, position, reason)
    sample, which `collate_readable` leaves out of the batch and reports, so that one bad
    file never stops a run.
    """

    def __init__(self, paths, transform, targets=None, decode_size=None):
        self.paths = PackedPaths(paths)
        self.transform = transform
        self.targets = targets
        self.decode_size = decode_size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, position):
        try:
            image = self.transform(open_image(self.paths[position], min_size=self.decode_size))
        except Exception as error:  # any decoder failure: report the file, keep going
            return None, None, position, describe_read_error(error)
        return image, self.target(position), position, None

    def target(self, position):
        if self.targets is None:
            return None
        if scipy.sparse.issparse(self.targets):  # a row of a large set's sparse matrix (see tag_matrix)
            return torch.from_numpy(self.targets[position].toarray()[0])
        return self.targets[position]

    def targets_of(self, positions):
        """The targets of several images at once, as one tensor (None for inference)."""
        if self.targets is None:
            return None
        if scipy.sparse.issparse(self.targets):
            return torch.from_numpy(self.targets[positions].toarray())
        return torch.as_tensor(self.targets[positions])


class UnreadableImages:
    """Collects the images that could not be read, naming each one once when first met
    (through tqdm.write, so that the message does not break a progress bar)."""

    def __init__(self):
        self.reasons = {}

    def add(self, dataset, unreadable):
        for position, reason in unreadable:
            path = dataset.paths[position]
            if path not in self.reasons:
                self.reasons[path] = reason
                tqdm.write(f"warning: skipping unreadable image {path}: {reason}")


def collate_readable(samples):
    if isinstance(samples, Batch):  # a dataset that makes whole batches itself (DecodedImages.__getitems__)
        return samples
    readable = [sample for sample in samples if sample[3] is None]
    unreadable = [(position, reason) for _, _, position, reason in samples if reason is not None]
    if not readable:
        return Batch(None, None, torch.empty(0, dtype=torch.long), unreadable)
    pictures = [sample[0] for sample in readable]
    # Decoded pictures are stacked; with --decode gpu some are still JPEG files' bytes, and the
    # batch keeps them as a list for decode_on_device (common/jpeg_decode.py)
    encoded = any(not isinstance(picture, torch.Tensor) for picture in pictures)
    images = pictures if encoded else default_collate(pictures)
    targets = default_collate([sample[1] for sample in readable]) if readable[0][1] is not None else None
    indices = torch.tensor([sample[2] for sample in readable], dtype=torch.long)
    return Batch(images, targets, indices, unreadable)
