"""Related images: the groups of pictures that must stay on one side of every split, so that the
images a run validates on (and the fold an audit judges) are new to the model.

A group comes from any of these, joined where they overlap:

- near-duplicates (--group-duplicates on, the default): copies of one picture resized, re-encoded,
  cropped a little, framed or brightened, and identical files (common/duplicates.py);
- a file-name pattern (--group-by REGEX): images whose paths inside the folder give the same first
  capture group (or the same whole match) belong together, such as the pages of one post
  ('^(\\d+)_p\\d+') or the renditions of one subject;
- a file listing them (--groups FILE): a CSV with the columns group and image (the path inside the
  folder), such as the one `prepare.py duplicates` writes.

With --group-duplicates off, near-duplicates are still looked for, so that a run can say how many of
its validation images have a near-duplicate among its training images.
"""

import csv
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.duplicates import components, find_duplicates, fingerprint_cache_path
from common.errors import UserError
from common.files import atomic_write
from common.folder_scan import short_list
from common.tagfiles import decode_tag_bytes

GROUP_FILE_COLUMNS = ("group", "image")


# ----------------------------------------------------------------------------- settings
def compile_group_pattern(text):
    """--group-by's pattern, compiled; a UserError says what is wrong with it."""
    try:
        pattern = re.compile(text)
    except re.error as error:
        raise UserError(f"--group-by {text!r} is not a regular expression ({error}); for example '^(\\d+)_p\\d+' "
                        "groups 123_p0.jpg with 123_p1.jpg") from None
    return pattern


def check_group_settings(args):
    """The grouping settings, checked before any data is read."""
    if getattr(args, "group_by", ""):
        compile_group_pattern(args.group_by)
    if getattr(args, "groups", ""):
        read_group_file(args.groups)


def read_group_file(path):
    """[(group, image path inside the folder)] from a CSV with the columns group and image."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"--groups {path} {what}: give a CSV with the columns group,image (such as the one "
                        "`python prepare.py duplicates DIR` writes)")
    try:
        reader = csv.DictReader(decode_tag_bytes(path.read_bytes()).splitlines())
        rows = list(reader)
    except (OSError, csv.Error) as error:
        raise UserError(f"--groups {path} cannot be read as a CSV ({error})") from None
    missing = [column for column in GROUP_FILE_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"--groups {path} has no {' or '.join(missing)} column: its first line must name the columns "
                        "group,image (one row per image: the group's name, then the image's path inside the folder)")
    return [((row["group"] or "").strip(), (row["image"] or "").strip()) for row in rows
            if (row["group"] or "").strip() and (row["image"] or "").strip()]


# ----------------------------------------------------------------------------- finding them
@dataclass
class RelatedImages:
    """The groups of a folder's images: each image's group number (an image without relatives has
    one of its own), the groups of two or more as lists of rows, and, while near-duplicates are not
    kept together, the near-duplicate pairs (first rows, second rows) that a split may cut."""

    group_of: np.ndarray
    groups: list
    keeps_together: bool = True
    near_pairs: tuple | None = None

    def leaked_count(self, validation):
        """How many of the `validation` rows have a near-duplicate among the other rows (the training ones)."""
        if self.near_pairs is None or not len(validation):
            return 0
        held_out = np.zeros(len(self.group_of), bool)
        held_out[validation] = True
        first, second = (np.asarray(side, dtype=np.int64) for side in self.near_pairs)
        across = held_out[first] != held_out[second]
        return len(set(np.where(held_out[first], first, second)[across].tolist()))


def group_names_by_pattern(names, pattern):
    """{key: [rows]} of the names the pattern finds something in: the first capture group (or the
    whole match) is the key; plus the rows it matches nothing in."""
    keys, unmatched = {}, []
    for row, name in enumerate(names):
        found = pattern.search(name)
        if not found:
            unmatched.append(row)
            continue
        key = found.group(1) if pattern.groups and found.group(1) is not None else found.group(0)
        keys.setdefault(key, []).append(row)
    return keys, unmatched


def related_images(args, paths, description=print):
    """The RelatedImages of `paths` (the images of args.data) from the run's settings: --group-duplicates,
    --group-by and --groups. Prints what it found in one line. (Under torchrun the main process
    finds them and sends them to the others: common/distributed.py's from_main.)"""
    paths = list(paths)
    started = time.perf_counter()
    root = Path(args.data)
    names = [Path(path).relative_to(root).as_posix() for path in paths]
    edges, counts = [], {}
    if getattr(args, "group_by", ""):
        keys, unmatched = group_names_by_pattern(names, compile_group_pattern(args.group_by))
        if not keys:
            raise UserError(f"--group-by {args.group_by!r} matches none of the {len(names)} image names in {root} "
                            f"(for example {names[0]!r}): check the pattern")
        joined = [rows for rows in keys.values() if len(rows) > 1]
        edges += [(rows[0], other) for rows in joined for other in rows[1:]]  # a chain joins the whole group
        counts["--group-by"] = joined
        if unmatched:
            description(f"note: --group-by matches nothing in {len(unmatched)} image name(s), which stand alone: "
                        f"{short_list([paths[row] for row in unmatched], root, limit=5)}")
    if getattr(args, "groups", ""):
        rows_of = {name: row for row, name in enumerate(names)}
        listed, unknown = {}, []
        for group, image in read_group_file(args.groups):
            if image in rows_of:
                listed.setdefault(group, []).append(rows_of[image])
            else:
                unknown.append(image)
        joined = [rows for rows in listed.values() if len(rows) > 1]
        edges += [(rows[0], other) for rows in joined for other in rows[1:]]
        counts["--groups"] = joined
        if unknown:
            description(f"note: {len(unknown)} image(s) listed in {args.groups} are not among the tagged images of "
                        f"{root} and are ignored: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    keeps_together = getattr(args, "group_duplicates", "on") == "on"
    duplicates = find_duplicates(paths, args.workers, fingerprint_cache_path(args.index_cache), root)
    near_pairs = None
    named = np.array(edges, dtype=np.int64).reshape(-1, 2)
    first, second = named[:, 0], named[:, 1]
    if keeps_together:
        first, second = np.concatenate([first, duplicates.pairs[0]]), np.concatenate([second, duplicates.pairs[1]])
        counts["near-duplicates"] = duplicates.groups
    else:
        near_pairs = duplicates.pairs
    group_of = components(len(paths), (first, second))
    members = {}
    for row, group in enumerate(group_of):
        members.setdefault(group, []).append(row)
    groups = sorted((rows for rows in members.values() if len(rows) > 1), key=lambda rows: (-len(rows), rows[0]))
    seconds = time.perf_counter() - started
    sources = "; ".join(f"{source}: {len(found)} groups, {sum(map(len, found))} images"
                        for source, found in counts.items() if found)
    if groups:
        description(f"groups: {len(groups)} groups of related images hold {sum(map(len, groups))} of {len(paths)} "
                    f"images ({sources}); each group stays on one side of the split (found in {seconds:.1f} s)")
    else:
        description(f"groups: no related images found among {len(paths)} (near-duplicates "
                    f"{'looked for' if keeps_together else 'looked for, not grouped'}; {seconds:.1f} s)")
    return RelatedImages(group_of, groups, keeps_together, near_pairs)


# ----------------------------------------------------------------------------- the group file
def write_group_file(path, named_groups):
    """The CSV --groups reads: one row (group, image) for each image of each group, in order."""
    with atomic_write(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(GROUP_FILE_COLUMNS)
        writer.writerows((name, image) for name, images in named_groups for image in images)


def disagreeing_tags(tag_lists):
    """The tags that some members of a group carry and others do not (None: an image without a tag
    file, which is left out of the comparison), sorted."""
    known = [set(tags) for tags in tag_lists if tags is not None]
    if len(known) < 2:
        return []
    return sorted(set.union(*known) - set.intersection(*known))
