"""Near-duplicate pictures: the same picture resized, re-encoded, cropped by a few per cent, framed or
brightened, and files with the same bytes.

Each picture gets a fingerprint that survives those changes:

1. a uniform border (a frame, or the plain background around a drawing) is trimmed, so that a framed
   copy and its original show the same thing;
2. the trimmed picture is shrunk to 16 x 16 pixels, each colour channel less its mean, and the whole
   scaled to length 1: a "look". The cosine of two looks ignores brightness and contrast, JPEG noise
   and resizing barely move it, and a colour variant (a blue and an orange ball) differs;
3. looks are kept at three zooms, the whole trimmed picture and its central 93 % and 86 %, so that a
   copy cropped by a few per cent matches its original's centre;
4. one more look is of the picture as it is, untrimmed: where JPEG noise or a faint shadow moves the
   trimmed border of a small drawing by a few pixels, a resized or re-encoded copy still matches
   its original as a whole.

A flat picture (a blank one, or a single filled shape once trimmed) has no structure to compare and
is nobody's near-duplicate; identical files are found by their bytes, whatever they hold.

Two pictures are near-duplicates when the whole of one and some zoom of the other are within
NEAR_DISTANCE (1 - cosine), or when their untrimmed looks are within the much closer WHOLE_DISTANCE
and their trimmed ones still roughly agree (WHOLE_AGREEMENT). Perceptual hashes (imagehash's pHash
and dHash) were measured and dropped: on drawings and icons their bits flip with a mere re-encoding,
and recall stayed below 0.8 at any useful precision (bench/README.md). Comparing every pair is a
matrix product of small 8 x 8 looks (trimmed, then untrimmed), in blocks, which keeps the few close
candidates for the full check.
"""

import contextlib
import hashlib
import multiprocessing
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from common.files import atomic_write
from common.images import describe_read_error, open_image
from common.progress import progress

LOOK_SIDE = 16  # pixels of a look, in colour
ZOOMS = (1.0, 0.93, 0.86)  # the whole trimmed picture, and its centre, for copies cropped by a few per cent
CANDIDATE_SIDE = 8  # the small look that finds candidates in one matrix product
NEAR_DISTANCE = 0.065  # 1 - cosine of the closest looks: chosen on bench/duplicates.py's changed copies
CANDIDATE_DISTANCE = 0.2  # of the small looks: keeps 99.7 % of the pairs the full check accepts
WHOLE_DISTANCE = 0.02  # 1 - cosine of the untrimmed looks of a resized or re-encoded copy ...
WHOLE_AGREEMENT = 0.4  # ... whose closest trimmed looks are within this (bench/duplicates.py: +3 points of recall)
WHOLE_CANDIDATE_DISTANCE = 0.05  # of the small untrimmed looks: keeps all but 0.03 % of the pairs accepted
UNTRIMMED = len(ZOOMS)  # where the untrimmed look is kept, after the zooms
FLAT = 1.0  # levels of 255: a look whose pixels vary less than this (root mean square) is flat
DECODE_SIZE = 64  # JPEGs decode at 1/2, 1/4 or 1/8 of full size while both sides stay this large
# A pixel is content when it differs from the border colour by more than this many levels, and more
# than this share of the picture's 99th percentile difference (bench/duplicates.py tried 20 and 0.25)
BORDER_TOLERANCE, BORDER_SHARE = 10.0, 0.12
TRIM_WORK_SIZE = 128  # the border is found on a grey copy no larger than this: fast, and JPEG noise averages out
BLOCK = 512  # pictures compared with all others at once (the block's similarities take BLOCK x N floats)
CHECKED_AT_ONCE = 8192  # candidate pairs whose looks are compared at once (150 MB of looks)
CANDIDATES_PER_PICTURE = 32  # the closest candidates of each picture that get the full check


# ----------------------------------------------------------------------------- fingerprints
def uniform_border_box(pixels):
    """(top, bottom, left, right) of what lies inside the uniform border of an RGB picture (a NumPy
    array, height x width x 3), or None when none of its edges is of the border's colour.

    The border's colour is the median of the outermost pixels. A pixel is content when one of its
    channels differs from it by more than an eighth of the picture's spread (so that brightening,
    which scales the differences, moves nothing; and a yellow shape on light grey counts, though its
    grey hardly differs); a row or column is content when more than 2 % of it is (a stray JPEG speck
    is not). Each side is trimmed only if its outermost line is of the border's colour: a copy cut
    into its picture on one side keeps that side, and is trimmed on the others as its original is."""
    ring = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    border = np.median(ring, axis=0)
    difference = np.abs(pixels - border).max(-1)
    tolerance = max(BORDER_TOLERANCE, BORDER_SHARE * np.percentile(difference, 99))
    content = difference > tolerance
    plain = [content[0].mean() <= 0.05, content[-1].mean() <= 0.05, content[:, 0].mean() <= 0.05,
             content[:, -1].mean() <= 0.05]  # top, bottom, left, right: does this side show the border?
    if sum(plain) < 2:  # a photo's edges (one of them sky, perhaps), speckles: nothing to trim
        return None
    rows, columns = np.flatnonzero(content.mean(1) > 0.02), np.flatnonzero(content.mean(0) > 0.02)
    if len(rows) < 2 or len(columns) < 2:
        return None  # a blank picture: keep it whole
    height, width = content.shape
    return (rows[0] if plain[0] else 0, rows[-1] + 1 if plain[1] else height,
            columns[0] if plain[2] else 0, columns[-1] + 1 if plain[3] else width)


def trim_uniform_border(picture, passes=2):
    """The picture without its uniform border: a frame, then the plain background inside it."""
    scale = max(1.0, max(picture.size) / TRIM_WORK_SIZE)
    small = picture
    if scale > 1:
        small = small.resize((max(1, round(picture.width / scale)), max(1, round(picture.height / scale))), Image.BOX)
    pixels = np.asarray(small, dtype=np.float32)
    top, bottom, left, right = 0, pixels.shape[0], 0, pixels.shape[1]
    for _ in range(passes):
        box = uniform_border_box(pixels[top:bottom, left:right])
        if box is None or box == (0, bottom - top, 0, right - left):
            break
        top, bottom, left, right = top + box[0], top + box[1], left + box[2], left + box[3]
    return picture.crop((round(left * scale), round(top * scale), round(right * scale), round(bottom * scale)))


def look_length(side):
    return 3 * side * side


def unit_look(picture, side, box=None):
    """The RGB picture (or its `box`) shrunk to side x side, each channel less its mean, scaled to
    length 1; all zeros for a flat picture, which is then close to nothing."""
    shrunk = np.asarray(picture.resize((side, side), Image.BOX, box=box), dtype=np.float32).reshape(-1, 3)
    pixels = (shrunk - shrunk.mean(0)).T.ravel()
    spread = np.linalg.norm(pixels)
    return pixels / spread if spread > FLAT * np.sqrt(len(pixels)) else np.zeros_like(pixels)


def fingerprint_picture(picture):
    """(small looks: trimmed and untrimmed, looks: at ZOOMS of the trimmed picture, then untrimmed) of
    an RGB picture, as float16 arrays."""
    trimmed = trim_uniform_border(picture)
    width, height = trimmed.size
    looks = []
    for zoom in ZOOMS:
        margin_x, margin_y = width * (1 - zoom) / 2, height * (1 - zoom) / 2
        looks.append(unit_look(trimmed, LOOK_SIDE, (margin_x, margin_y, width - margin_x, height - margin_y)))
    looks.append(unit_look(picture, LOOK_SIDE))
    small = np.stack([unit_look(trimmed, CANDIDATE_SIDE), unit_look(picture, CANDIDATE_SIDE)])
    return small.astype(np.float16), np.stack(looks).astype(np.float16)


def fingerprint_file(path):
    """(fingerprint, None), or (None, the reason) for a file that cannot be read as a picture."""
    try:
        return fingerprint_picture(open_image(path, min_size=DECODE_SIZE)), None
    except Exception as error:  # one bad image never stops a run: it is named, with the reason
        return None, describe_read_error(error)


@dataclass
class Fingerprints:
    """The fingerprints of a list of pictures, row by row; `readable` is False where one could not be read."""

    small: np.ndarray
    looks: np.ndarray
    readable: np.ndarray
    reasons: dict = field(default_factory=dict)  # row -> why the picture could not be read (this run's only)

    @classmethod
    def empty(cls, count):
        return cls(np.zeros((count, 2, look_length(CANDIDATE_SIDE)), np.float16),
                   np.zeros((count, len(ZOOMS) + 1, look_length(LOOK_SIDE)), np.float16), np.zeros(count, bool))

    def put(self, row, fingerprint, reason=None):
        if fingerprint is not None:
            self.small[row], self.looks[row] = fingerprint
            self.readable[row] = True
        else:
            self.reasons[row] = reason


def fingerprint_files(paths, workers=0, cache_path=None, folder=None, description="fingerprints"):
    """The Fingerprints of `paths`, computed in `workers` processes. With cache_path, those of files
    whose size and modification time are unchanged come from that file, which is then rewritten
    (keyed by the path inside `folder`)."""
    paths = list(paths)
    fingerprints = Fingerprints.empty(len(paths))
    cache = FingerprintCache(cache_path, folder) if cache_path else None
    missing = list(range(len(paths)))
    if cache is not None:
        missing = [row for row, path in enumerate(paths) if not cache.fill(fingerprints, row, path)]
    chosen = [paths[row] for row in missing]
    if chosen:
        with _pool(workers, len(chosen)) as pool:
            results = pool.imap(fingerprint_file, chosen, chunksize=32) if pool else map(fingerprint_file, chosen)
            for row, (fingerprint, reason) in zip(missing, progress(results, description, total=len(chosen),
                                                                    unit="image")):
                fingerprints.put(row, fingerprint, reason)
    if cache is not None and (chosen or cache.stale):
        cache.save(paths, fingerprints)
    return fingerprints


def _pool(workers, count):
    """Worker processes for many pictures; none for a few, where starting them costs more."""
    if workers < 1 or count < 64:
        return contextlib.nullcontext()
    return multiprocessing.get_context("spawn" if os.name == "nt" else None).Pool(min(workers, os.cpu_count() or 1))


class FingerprintCache:
    """Fingerprints kept in a file with each picture's size and modification time, so that a later run
    computes only those of new or changed pictures (see --index-cache). A file of another folder, or
    of another kind of fingerprint, is ignored and rewritten."""

    def __init__(self, path, folder):
        self.path, self.folder = Path(path), Path(folder) if folder else None
        self.rows, self.stale = {}, False
        try:
            with np.load(self.path) as kept:
                self.kept = {name: kept[name] for name in ("folder", "names", "stamps", "small", "looks", "readable")}
            if (self.kept["looks"].shape[1:] != (len(ZOOMS) + 1, look_length(LOOK_SIDE))
                    or self.kept["small"].shape[1:] != (2, look_length(CANDIDATE_SIDE))
                    or str(self.kept["folder"]) != self.folder_key):
                raise ValueError("fingerprints of another folder or kind")
            self.rows = {name: row for row, name in enumerate(self.kept["names"].tolist())}
        except (OSError, ValueError, KeyError, EOFError):  # missing or damaged: computed afresh, then rewritten
            self.kept = None

    @property
    def folder_key(self):
        return str(self.folder.resolve()) if self.folder else ""

    def key(self, path):
        return Path(path).relative_to(self.folder).as_posix() if self.folder else str(path)

    def fill(self, fingerprints, row, path):
        """Put the kept fingerprint of `path` in `row` if it is still valid; returns whether it was."""
        kept_row = self.rows.get(self.key(path))
        if kept_row is None:
            return False
        try:
            status = os.stat(path)
        except OSError:
            return False
        if tuple(self.kept["stamps"][kept_row]) != (status.st_mtime_ns, status.st_size):
            self.stale = True
            return False
        fingerprints.small[row], fingerprints.looks[row] = self.kept["small"][kept_row], self.kept["looks"][kept_row]
        fingerprints.readable[row] = self.kept["readable"][kept_row]
        return True

    def save(self, paths, fingerprints):
        stamps = np.zeros((len(paths), 2), np.int64)
        for row, path in enumerate(paths):
            try:
                status = os.stat(path)
                stamps[row] = status.st_mtime_ns, status.st_size
            except OSError:
                stamps[row] = -1, -1  # never matches: computed again next time
        with atomic_write(self.path, "wb") as file:
            np.savez(file, folder=np.array(self.folder_key), names=np.array([self.key(path) for path in paths]),
                     stamps=stamps, small=fingerprints.small, looks=fingerprints.looks, readable=fingerprints.readable)


def default_duplicates_path(folder):
    """DIR.duplicates.csv beside the folder (never inside it, where it would look like a tag file);
    its page is DIR.duplicates.html."""
    folder = Path(folder).resolve()
    return folder.with_name(f"{folder.name}.duplicates.csv")


def fingerprint_cache_path(index_cache):
    """Where --index-cache FILE keeps the pictures' fingerprints: FILE.fingerprints.npz."""
    return Path(f"{index_cache}.fingerprints.npz") if index_cache else None


# ----------------------------------------------------------------------------- pairs and groups
def near_duplicate_pairs(fingerprints):
    """(first rows, second rows) of every near-duplicate pair, first < second: the candidates of a
    block of rows are checked as soon as they are found, so that memory stays bounded."""
    readable = np.flatnonzero(fingerprints.readable)
    firsts, seconds = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for kind, distance in ((0, CANDIDATE_DISTANCE), (1, WHOLE_CANDIDATE_DISTANCE)):  # trimmed, then untrimmed
        small = fingerprints.small[readable, kind].astype(np.float32)
        for start in range(0, len(readable), BLOCK):
            similarity = small[start:start + BLOCK] @ small[start:].T  # each pair once: the rest of the rows
            rows, columns = np.nonzero(similarity >= 1 - distance)
            keep = columns > rows
            rows, columns = closest_candidates(rows[keep], columns[keep], similarity[rows[keep], columns[keep]])
            first, second = readable[rows + start], readable[columns + start]
            for chunk in range(0, len(first), CHECKED_AT_ONCE):
                a, b = first[chunk:chunk + CHECKED_AT_ONCE], second[chunk:chunk + CHECKED_AT_ONCE]
                near = are_near(fingerprints.looks, a, b)
                firsts.append(a[near])
                seconds.append(b[near])
    pairs = np.unique(np.stack([np.concatenate(firsts), np.concatenate(seconds)]), axis=1)  # found twice: once
    return pairs[0], pairs[1]


def closest_candidates(rows, columns, similarity, limit=CANDIDATES_PER_PICTURE):
    """The `limit` most similar candidates of each row. A picture with many look-alikes (a clear sky,
    a hundred crops of one wallpaper) would otherwise cost a full check each; its copies are still
    joined through one another."""
    order = np.lexsort((-similarity, rows))
    rows, columns = rows[order], columns[order]
    starts = np.searchsorted(rows, rows)  # where each row's candidates begin
    keep = np.arange(len(rows)) - starts < limit
    return rows[keep], columns[keep]


def are_near(looks, first, second):
    """Whether each pair (first, second) are near-duplicates (see the module's description)."""
    closest = closest_looks(looks, first, second)
    as_they_are = np.einsum("ij,ij->i", looks[first, UNTRIMMED].astype(np.float32),
                            looks[second, UNTRIMMED].astype(np.float32))
    return (closest >= 1 - NEAR_DISTANCE) | ((as_they_are >= 1 - WHOLE_DISTANCE) & (closest >= 1 - WHOLE_AGREEMENT))


def closest_looks(looks, first, second):
    """The cosine of the closest trimmed looks of each pair: the whole of one against each zoom of the
    other (a cropped copy's whole is its original's centre)."""
    looks_a, looks_b = looks[first, :UNTRIMMED].astype(np.float32), looks[second, :UNTRIMMED].astype(np.float32)
    return np.maximum(np.einsum("ij,ikj->ik", looks_a[:, 0], looks_b).max(1),
                      np.einsum("ij,ikj->ik", looks_b[:, 0], looks_a).max(1))


def identical_file_pairs(paths):
    """Pairs of files with the same bytes (only files of equal size are read)."""
    by_size = defaultdict(list)
    for row, path in enumerate(paths):
        try:
            by_size[os.stat(path).st_size].append(row)
        except OSError:
            continue
    pairs = []
    for rows in by_size.values():
        if len(rows) < 2:
            continue
        by_digest = defaultdict(list)
        for row in rows:
            try:
                by_digest[file_digest(paths[row])].append(row)
            except OSError:
                continue
        pairs += [(same[0], other) for same in by_digest.values() for other in same[1:]]
    return pairs


def file_digest(path):
    digest = hashlib.blake2b()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def components(count, pairs):
    """Each of `count` items' component number, joining the items of every pair (first, second)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    first, second = (np.asarray(side, dtype=np.int64) for side in pairs)
    graph = coo_matrix((np.ones(len(first)), (first, second)), shape=(count, count))
    return connected_components(graph, directed=False)[1]


@dataclass
class DuplicateGroups:
    """The groups of two or more near-duplicate pictures among `paths` (lists of rows, largest
    first), which of them hold identical files only, and the pictures that could not be read."""

    groups: list
    identical: set = field(default_factory=set)  # indices into groups whose files all have the same bytes
    unreadable: dict = field(default_factory=dict)  # path -> the reason, or None when known from the cache
    pairs: tuple = ((), ())  # every near-duplicate or identical pair found (first rows, second rows)

    @property
    def image_count(self):
        return sum(len(group) for group in self.groups)


def find_duplicates(paths, workers=0, cache_path=None, folder=None):
    """Near-duplicates and identical files among `paths` (see the module's description)."""
    paths = list(paths)
    fingerprints = fingerprint_files(paths, workers, cache_path, folder)
    near_first, near_second = near_duplicate_pairs(fingerprints)
    identical = np.array(identical_file_pairs(paths), dtype=np.int64).reshape(-1, 2)
    first, second = np.concatenate([near_first, identical[:, 0]]), np.concatenate([near_second, identical[:, 1]])
    component = components(len(paths), (first, second))
    same_bytes = components(len(paths), (identical[:, 0], identical[:, 1]))
    members = defaultdict(list)
    for row, number in enumerate(component):
        members[number].append(row)
    groups = sorted((rows for rows in members.values() if len(rows) > 1), key=lambda rows: (-len(rows), rows[0]))
    identical_files = {number for number, rows in enumerate(groups) if len(set(same_bytes[rows])) == 1}
    unreadable = {paths[row]: fingerprints.reasons.get(row) for row in np.flatnonzero(~fingerprints.readable)}
    return DuplicateGroups(groups, identical_files, unreadable, (first, second))
