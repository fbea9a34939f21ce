"""A folder of images with sidecar tag files, read into a PyTorch dataset.

Sidecar naming, in the order we look for them:
    cat1.jpg.txt   (what gallery-dl --write-tags writes)
    cat1.txt       (the kohya / DeepDanbooru style)
A tag file holds one tag per line, or comma-separated tags; an empty file means "no tags".
"""

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, default_collate
from tqdm.auto import tqdm  # widgets in notebooks, text bars in terminals

from common.errors import UserError
from common.files import write_text_atomically
from common.images import is_image_file, open_image

# Files that operating systems and photo tools leave behind; never images, never worth a warning.
JUNK_FILE_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}
TAG_FILE_SUFFIX = ".txt"


def is_junk(name):
    return name.startswith(".") or name.lower() in JUNK_FILE_NAMES  # covers .DS_Store and macOS ._ files


def tag_file_names(image_name):
    """The sidecar names for an image, in the order they are looked for."""
    return (image_name + TAG_FILE_SUFFIX, os.path.splitext(image_name)[0] + TAG_FILE_SUFFIX)


def default_tag_file(image_path):
    """Where a new sidecar goes: the full image name plus .txt."""
    image_path = Path(image_path)
    return image_path.with_name(tag_file_names(image_path.name)[0])


def find_tag_file(image_path):
    image_path = Path(image_path)
    for name in tag_file_names(image_path.name):
        if (image_path.parent / name).is_file():
            return image_path.parent / name
    return None


def parse_tags(text):
    """Split tag-file text into tags: one per line and/or comma-separated. Whitespace, a BOM,
    CR line ends, blank entries and repeats are dropped; the first occurrence keeps its place."""
    tags = []
    for line in text.lstrip("\ufeff").splitlines():
        for tag in line.split(","):
            tag = tag.strip().lstrip("\ufeff")
            if tag and tag not in tags:
                tags.append(tag)
    return tags


def decode_tag_bytes(raw):
    """Text from a tag file's bytes: UTF-8 (with or without BOM), UTF-16 with a BOM (as Windows
    Notepad saves 'Unicode'), else Windows-1252, else Latin-1, which accepts any byte."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def read_tag_file(path):
    return parse_tags(decode_tag_bytes(Path(path).read_bytes()))


def format_tags(tags, separator="\n"):
    """The text of a tag file. One tag per line ends with a newline, like gallery-dl's files."""
    text = separator.join(tags)
    return text + "\n" if separator == "\n" and tags else text


def detect_separator(text):
    """', ' for a kohya-style single comma-separated line, else one tag per line."""
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    return ", " if len(lines) == 1 and "," in lines[0] else "\n"


def merge_into_tag_file(path, new_tags):
    """Add tags to a tag file (created if missing), keeping its tags, their order and its style.
    Returns True if the file changed."""
    path = Path(path)
    text = decode_tag_bytes(path.read_bytes()) if path.exists() else ""
    old_tags = parse_tags(text)
    added = [tag for tag in new_tags if tag not in old_tags]
    if path.exists() and not added:
        return False
    write_text_atomically(path, format_tags(old_tags + added, detect_separator(text)))
    return True


@dataclass
class FolderScan:
    """What is in a folder: images paired with their tag files, and what could not be paired."""

    folder: Path
    images: list = field(default_factory=list)  # every image, sorted
    tag_file_of: dict = field(default_factory=dict)  # image -> its tag file, for images that have one
    orphan_tag_files: list = field(default_factory=list)  # .txt files that belong to no image

    @property
    def untagged_images(self):
        return [image for image in self.images if image not in self.tag_file_of]


def scan_folder(folder, recursive=False):
    """List a folder's images and pair them with tag files, with one directory listing per
    folder (no per-file stat calls), so that even very large folders scan quickly."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: check the path (relative paths start from {Path.cwd()})")
    scan = FolderScan(folder)
    for directory in _directories(folder, recursive):
        with os.scandir(directory) as entries:
            files = sorted(entry.name for entry in entries if entry.is_file() and not is_junk(entry.name))
        texts = {name for name in files if name.endswith(TAG_FILE_SUFFIX)}
        used = set()
        for name in files:
            if not is_image_file(Path(name)):
                continue
            image = Path(directory, name)
            scan.images.append(image)
            tag_name = next((candidate for candidate in tag_file_names(name) if candidate in texts), None)
            if tag_name:
                scan.tag_file_of[image] = Path(directory, tag_name)
                used.add(tag_name)
        scan.orphan_tag_files += [Path(directory, name) for name in sorted(texts - used)]
    scan.images.sort()
    return scan


def _directories(folder, recursive):
    if not recursive:
        yield folder
        return
    for directory, subfolders, _ in os.walk(folder):
        subfolders[:] = sorted(name for name in subfolders if not is_junk(name))
        yield Path(directory)


def short_list(paths, root, limit=10):
    """'a.jpg, b.jpg and 3 more' with paths relative to root, for one-line reports."""
    names = [str(Path(path).relative_to(root)) if Path(path).is_relative_to(root) else str(path) for path in paths]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def describe_pairing_problems(scan):
    """One line for each kind of pairing problem, naming the files; empty if there are none."""
    lines = []
    if scan.untagged_images:
        lines.append(f"{len(scan.untagged_images)} image(s) in {scan.folder} have no tag file and are left out: "
                     f"{short_list(scan.untagged_images, scan.folder)}. Add NAME.EXT.txt sidecars (an empty "
                     "file means 'no tags') to use them.")
    if scan.orphan_tag_files:
        lines.append(f"{len(scan.orphan_tag_files)} tag file(s) in {scan.folder} match no image and are ignored: "
                     f"{short_list(scan.orphan_tag_files, scan.folder)}.")
    return lines


def read_tags_of(scan):
    """{image: [tags]} for every image that has a tag file."""
    return {image: read_tag_file(tag_file) for image, tag_file in scan.tag_file_of.items()}


def build_vocabulary(tag_lists, min_count=1):
    """The sorted list of every tag on at least `min_count` images: stable across runs and platforms."""
    counts = Counter(tag for tags in tag_lists for tag in tags)
    return sorted(tag for tag, count in counts.items() if count >= min_count)


def no_readable_images(folder):
    return UserError(f"none of the training images in {folder} could be read. "
                     "Check them with `python prepare.py check`.")


def multi_hot(tag_lists, vocabulary):
    """An (images x tags) float tensor with 1 where the image carries the tag."""
    column = {tag: position for position, tag in enumerate(vocabulary)}
    targets = torch.zeros(len(tag_lists), len(vocabulary))
    for row, tags in enumerate(tag_lists):
        for tag in tags:
            if tag in column:
                targets[row, column[tag]] = 1.0
    return targets


def split_train_validation(targets, validation_fraction, seed):
    """Seeded split of the rows of an (images x tags) 0/1 matrix into (train, validation) index
    lists, by iterative stratification (Sechidis et al. 2011): each tag's positives are shared
    out in proportion, so that even rare tags reach the validation set."""
    if not 0.0 <= validation_fraction < 1.0:
        raise UserError(f"--val-fraction must be at least 0 and below 1, not {validation_fraction}")
    count = len(targets)
    validation_size = round(count * validation_fraction)
    if validation_fraction > 0 and count >= 2:
        validation_size = min(max(validation_size, 1), count - 1)  # a tiny set still gets one
    if validation_size == 0:
        return list(range(count)), []
    targets = np.asarray(targets)
    if targets.shape[1] == 1:  # the stratifier wants two or more columns; "not the tag" is as good as any
        targets = np.hstack([targets, 1 - targets])
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=validation_size, random_state=seed)
    train, validation = next(splitter.split(np.zeros(count), targets))
    return sorted(train.tolist()), sorted(validation.tolist())


def describe_read_error(error):
    """A short reason for an unreadable image, without the path (the caller names the file)."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image format Pillow can read (empty, corrupt or mislabelled file)"
    if isinstance(error, Image.DecompressionBombError):
        return (f"{error} Shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file "
                "(a decompression bomb is a tiny file that expands to exhaust memory)")
    text = str(error)
    if "truncated" in text:
        return "the file is truncated (an incomplete download?)"
    return f"{type(error).__name__}: {text}"


class Batch(NamedTuple):
    images: torch.Tensor | None  # None when every image of the batch was unreadable
    targets: torch.Tensor | None  # None for inference
    indices: torch.Tensor  # positions in the dataset of the readable images
    unreadable: list  # (position, reason) for each image that could not be read


class ImageTagDataset(Dataset):
    """Images and, when training, their multi-hot targets.

    An unreadable image does not raise: it comes back as a (None, None, position, reason)
    sample, which `collate_readable` leaves out of the batch and reports, so that one bad
    file never stops a run.
    """

    def __init__(self, paths, transform, targets=None, decode_size=None):
        self.paths = list(paths)
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
        target = self.targets[position] if self.targets is not None else None
        return image, target, position, None


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
    readable = [sample for sample in samples if sample[3] is None]
    unreadable = [(position, reason) for _, _, position, reason in samples if reason is not None]
    if not readable:
        return Batch(None, None, torch.empty(0, dtype=torch.long), unreadable)
    images = default_collate([sample[0] for sample in readable])
    targets = default_collate([sample[1] for sample in readable]) if readable[0][1] is not None else None
    indices = torch.tensor([sample[2] for sample in readable], dtype=torch.long)
    return Batch(images, targets, indices, unreadable)
