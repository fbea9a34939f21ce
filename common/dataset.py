"""A folder of images with sidecar tag files, read into a PyTorch dataset.

Sidecar naming, in the order we look for them:
    cat1.jpg.txt   (what gallery-dl --write-tags writes)
    cat1.txt       (the kohya / DeepDanbooru style)
A tag file holds one tag per line, or comma-separated tags; an empty file means "no tags".
"""

import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.sparse
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
                tags.append(sys.intern(tag))  # one copy of each tag however many files carry it
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
    folder and no per-file calls, so that a million files scan in seconds (bench/scan_speed.py)."""
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
            if not is_image_file(name):
                continue
            image = directory / name
            scan.images.append(image)
            tag_name = next((candidate for candidate in tag_file_names(name) if candidate in texts), None)
            if tag_name:
                scan.tag_file_of[image] = directory / tag_name
                used.add(tag_name)
        scan.orphan_tag_files += [directory / name for name in sorted(texts - used)]
    if recursive:  # one folder's names are already in order; several folders' must be merged
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


# Tag files read at once. A disk serves many small reads together, and Python threads wait for
# I/O without holding the GIL: 8 threads read 100,000 tag files that are not in the page cache
# 2-3x faster than one (bench/scan_speed.py), at a small cost when they are.
READING_THREADS = 8


def map_in_threads(function, items, chunk_size=256):
    """[function(item) for item in items], run by READING_THREADS threads for I/O-bound functions."""
    if len(items) <= chunk_size:
        return [function(item) for item in items]
    chunks = [items[start:start + chunk_size] for start in range(0, len(items), chunk_size)]
    with ThreadPoolExecutor(READING_THREADS) as pool:
        return [result for results in pool.map(lambda chunk: [function(item) for item in chunk], chunks)
                for result in results]


def read_file_bytes(path):
    with open(path, "rb", buffering=0) as file:  # unbuffered: one read call for a small file
        return file.read()


def file_stamp(path):
    """(modification time in ns, size): what tells a changed file from an unchanged one."""
    status = os.stat(path)
    return status.st_mtime_ns, status.st_size


def read_tag_files(paths):
    """The tags of many tag files, in order: read in threads, parsed here."""
    return [parse_tags(decode_tag_bytes(raw)) for raw in map_in_threads(read_file_bytes, paths)]


def read_tags_of(scan, index_path=None, save_index=True):
    """{image: [tags]} for every image that has a tag file.

    With index_path, the tags are also kept in that file with each tag file's size and
    modification time, and a later call reads again only the tag files whose size or time
    changed (as make and rsync decide), plus new ones: a stat is cheaper than a read, above all
    when the files are not in the disk cache. The index is rewritten when anything changed, unless
    save_index is False (the processes other than the main one under torchrun).
    """
    images, tag_files = list(scan.tag_file_of), list(scan.tag_file_of.values())
    if index_path is None:
        return dict(zip(images, read_tag_files(tag_files)))
    known = load_tag_index(index_path, scan.folder)
    prefix = len(str(scan.folder)) + 1  # tag files are keyed by their path inside the folder
    keys = [str(tag_file)[prefix:] for tag_file in tag_files]
    stamps = map_in_threads(file_stamp, tag_files)
    stale = [position for position, (key, stamp) in enumerate(zip(keys, stamps))
             if key not in known or known[key][0] != stamp]
    fresh = dict(zip(stale, read_tag_files([tag_files[position] for position in stale])))
    entries = {key: (stamp, fresh[position] if position in fresh else known[key][1])
               for position, (key, stamp) in enumerate(zip(keys, stamps))}
    if save_index and (stale or len(entries) != len(known)):
        save_tag_index(index_path, scan.folder, entries)
    return {image: entries[key][1] for image, key in zip(images, keys)}


TAG_INDEX_FORMAT = "multitag-trainer tag index"


def save_tag_index(path, folder, entries):
    """JSON: each tag once in a list, and per tag file [mtime_ns, size, [positions in that list]]."""
    vocabulary = build_vocabulary(tags for _, tags in entries.values())
    position = {tag: number for number, tag in enumerate(vocabulary)}
    files = {key: [*stamp, [position[tag] for tag in tags]] for key, (stamp, tags) in entries.items()}
    index = {"format": TAG_INDEX_FORMAT, "version": 1, "folder": str(Path(folder).resolve()), "tags": vocabulary,
             "files": files}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(index, ensure_ascii=False, separators=(",", ":")))


def load_tag_index(path, folder):
    """{tag file key: ((mtime_ns, size), tags)} from an index of this folder; empty (so that the
    index is rebuilt) when the file is missing, unreadable, or belongs to another folder."""
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
        if index.get("format") != TAG_INDEX_FORMAT or index.get("folder") != str(Path(folder).resolve()):
            return {}
        vocabulary = index["tags"]
        return {key: ((mtime, size), [vocabulary[number] for number in numbers])
                for key, (mtime, size, numbers) in index["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}


def build_vocabulary(tag_lists, min_count=1):
    """The sorted list of every tag on at least `min_count` images: stable across runs and platforms."""
    counts = Counter(tag for tags in tag_lists for tag in tags)
    return sorted(tag for tag, count in counts.items() if count >= min_count)


def no_readable_images(folder):
    return UserError(f"none of the training images in {folder} could be read. "
                     "Check them with `python prepare.py check`.")


def multi_hot(tag_lists, vocabulary):
    """An (images x tags) float tensor with 1 where the image carries the tag (tag_matrix, dense)."""
    return torch.from_numpy(tag_matrix(tag_lists, vocabulary).toarray())


def tag_matrix(tag_lists, vocabulary):
    """The same as multi_hot, as a SciPy sparse (CSR) matrix: a million images with thousands of
    tags take a few bytes per tag they carry, instead of 4 bytes per image and known tag (12 GB)."""
    column = {tag: position for position, tag in enumerate(vocabulary)}
    columns = [list(dict.fromkeys(column[tag] for tag in tags if tag in column)) for tags in tag_lists]  # 0/1
    indices = np.fromiter((position for row in columns for position in row), dtype=np.int32)
    row_starts = np.concatenate([[0], np.cumsum([len(row) for row in columns])]).astype(np.int64)
    return scipy.sparse.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, row_starts),
                                   shape=(len(tag_lists), len(vocabulary)))


# Iterative stratification visits every image-tag pair many times: 14 s and 1 GB for 10,000 images x
# 3,000 tags, minutes for more. Past this many pairs, split_by_rarest_tag does the job in one pass.
ITERATIVE_STRATIFICATION_LIMIT = 10_000_000


def split_train_validation(targets, validation_fraction, seed):
    """Seeded split of the rows of an (images x tags) 0/1 matrix (dense or sparse) into (train,
    validation) index lists, by iterative stratification (Sechidis et al. 2011): each tag's
    positives are shared out in proportion, so that even rare tags reach the validation set."""
    if not 0.0 <= validation_fraction < 1.0:
        raise UserError(f"--val-fraction must be at least 0 and below 1, not {validation_fraction}")
    count = targets.shape[0]
    validation_size = round(count * validation_fraction)
    if validation_fraction > 0 and count >= 2:
        validation_size = min(max(validation_size, 1), count - 1)  # a tiny set still gets one
    if validation_size == 0:
        return list(range(count)), []
    if count * targets.shape[1] > ITERATIVE_STRATIFICATION_LIMIT:
        return split_by_rarest_tag(scipy.sparse.csr_matrix(targets), validation_size, seed)
    targets = targets.toarray() if scipy.sparse.issparse(targets) else np.asarray(targets)
    if targets.shape[1] == 1:  # the stratifier wants two or more columns; "not the tag" is as good as any
        targets = np.hstack([targets, 1 - targets])
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=validation_size, random_state=seed)
    train, validation = next(splitter.split(np.zeros(count), targets))
    return sorted(train.tolist()), sorted(validation.tolist())


def split_by_rarest_tag(targets, validation_size, seed):
    """A stratified split for very large sets: iterative stratification's greedy idea, in one pass
    over a sparse (images x tags) matrix.

    Tags are visited from the rarest to the most common. Each sends its share of its images to
    validation (counting the ones a rarer tag already sent; a fractional share is rounded up or
    down at random, in proportion), chosen at random among its images not yet placed, and its
    other unplaced images to training. Untagged images then make up the exact validation size.
    """
    count = targets.shape[0]
    share = validation_size / count
    columns = scipy.sparse.csc_matrix(targets)
    generator = np.random.default_rng(seed)
    placement = np.zeros(count, dtype=np.int8)  # 0: not yet placed, 1: validation, -1: training
    for tag in np.argsort(np.diff(columns.indptr), kind="stable"):
        images = columns.indices[columns.indptr[tag]:columns.indptr[tag + 1]]
        unplaced = generator.permutation(images[placement[images] == 0])
        wanted = share * len(images)
        wanted = int(wanted) + (generator.random() < wanted % 1)
        taken = int(np.clip(wanted - np.count_nonzero(placement[images] == 1), 0, len(unplaced)))
        placement[unplaced[:taken]], placement[unplaced[taken:]] = 1, -1
    missing = validation_size - np.count_nonzero(placement == 1)
    if missing > 0:  # untagged images first, then any training image
        candidates = np.concatenate([generator.permutation(np.flatnonzero(placement == 0)),
                                     generator.permutation(np.flatnonzero(placement == -1))])
        placement[candidates[:missing]] = 1
    elif missing < 0:
        placement[generator.choice(np.flatnonzero(placement == 1), -missing, replace=False)] = -1
    return np.flatnonzero(placement != 1).tolist(), np.flatnonzero(placement == 1).tolist()


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
