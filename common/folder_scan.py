"""Finding a folder's images and their tag files, reading the tags (with an optional index that
remembers unchanged tag files), and turning them into a tag vocabulary and an image x tag matrix."""

import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.files import write_text_atomically
from common.images import is_image_file
from common.tagfiles import TAG_FILE_SUFFIX, decode_tag_bytes, parse_tags, tag_file_names

# Files that operating systems and photo tools leave behind; never images, never worth a warning.
JUNK_FILE_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}


def is_junk(name):
    return name.startswith(".") or name.lower() in JUNK_FILE_NAMES  # covers .DS_Store and macOS ._ files


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


def multi_hot(tag_lists, vocabulary):
    """An (images x tags) float array with 1 where the image carries the tag (tag_matrix, dense)."""
    return tag_matrix(tag_lists, vocabulary).toarray()


def tag_matrix(tag_lists, vocabulary):
    """The same as multi_hot, as a SciPy sparse (CSR) matrix: a million images with thousands of
    tags take a few bytes per tag they carry, instead of 4 bytes per image and known tag (12 GB)."""
    import scipy.sparse  # here: scanning a folder and reading its tags (prepare.py) need no SciPy

    column = {tag: position for position, tag in enumerate(vocabulary)}
    columns = [list(dict.fromkeys(column[tag] for tag in tags if tag in column)) for tags in tag_lists]  # 0/1
    indices = np.fromiter((position for row in columns for position in row), dtype=np.int32)
    row_starts = np.concatenate([[0], np.cumsum([len(row) for row in columns])]).astype(np.int64)
    return scipy.sparse.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, row_starts),
                                   shape=(len(tag_lists), len(vocabulary)))


def load_training_data(args, processes):
    """Scan the folder, name what cannot be used, drop too-rare tags; return (paths, targets, tags)."""
    started = time.perf_counter()
    scan = scan_folder(args.data, recursive=args.recursive)
    for line in describe_pairing_problems(scan):
        print(f"warning: {line}")
    tags_of = read_tags_of(scan, args.index_cache or None, save_index=processes.is_main)
    if not tags_of:
        raise UserError(f"found no images with tag files in {args.data}. Each image needs a sidecar such as "
                        "cat1.jpg.txt (or cat1.txt) holding its tags; `python prepare.py check DIR` explains more.")
    vocabulary = build_vocabulary(tags_of.values(), args.min_tag_count)
    dropped = sorted(set(build_vocabulary(tags_of.values())) - set(vocabulary))
    if dropped:
        print(f"dropped {len(dropped)} tag(s) on fewer than {args.min_tag_count} images: {', '.join(dropped[:20])}"
              f"{' ...' if len(dropped) > 20 else ''}")
    if not vocabulary:
        raise UserError(f"no tag in {args.data} is on at least {args.min_tag_count} images (--min-tag-count), "
                        "so there is nothing to learn. Add tags first.")
    print(f"data: {len(tags_of)} tagged images, {len(vocabulary)} tags, from {args.data} (read in "
          f"{time.perf_counter() - started:.1f} s{', index: ' + args.index_cache if args.index_cache else ''})")
    return list(tags_of), tag_matrix(list(tags_of.values()), vocabulary), vocabulary
