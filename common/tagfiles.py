"""The sidecar tag-file format: where an image's tag file is, how its text is read and written.

Sidecar naming, in the order we look for them:
    cat1.jpg.txt   (what gallery-dl --write-tags writes)
    cat1.txt       (the kohya / DeepDanbooru style)
A tag file holds one tag per line, or comma-separated tags; an empty file means "no tags".
"""

import os
import sys
from pathlib import Path

from common.files import write_text_atomically

TAG_FILE_SUFFIX = ".txt"


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
    # after a UTF-16 BOM, a file cut off mid-character is not UTF-16 after all: the others are tried
    utf16 = ("utf-16",) if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else ()
    for encoding in (*utf16, "utf-8-sig", "cp1252"):
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


def merge_into_tag_file(path, new_tags, dry_run=False):
    """Add tags to a tag file (created if missing), keeping its tags, their order and its style.
    Returns the tags it added (with dry_run, the ones it would add, writing nothing)."""
    path = Path(path)
    old_tags = parse_tags(decode_tag_bytes(path.read_bytes())) if path.exists() else []
    added = [tag for tag in new_tags if tag not in old_tags]
    if added or not path.exists():
        edit_tag_file(path, added, (), dry_run)
    return added


def edit_tag_file(path, add=(), remove=(), dry_run=False):
    """Add and remove tags in a tag file (created if missing), keeping the other tags, their order
    and the file's style (one per line, or one comma-separated line). Returns the new text, which
    is written atomically unless dry_run."""
    path = Path(path)
    text = decode_tag_bytes(path.read_bytes()) if path.exists() else ""
    old_tags = parse_tags(text)
    tags = [tag for tag in old_tags if tag not in remove] + [tag for tag in add if tag not in old_tags]
    new_text = format_tags(tags, detect_separator(text))
    if not dry_run:
        write_text_atomically(path, new_text)
    return new_text


def new_sidecar_path(image, style, stems_taken):
    """NAME.EXT.txt, or NAME.txt with --sidecar-style stem unless another image has the same stem."""
    if style == "stem" and stems_taken.get((image.parent, image.stem), 0) < 2:
        return image.with_name(tag_file_names(image.name)[1])
    return default_tag_file(image)


def write_sidecar(image, existing_tag_file, tags, args, stems_taken):
    """Write the image's tags, or merge them into its sidecar; returns 'written' or 'merged'."""
    if args.merge and existing_tag_file is not None:
        merge_into_tag_file(existing_tag_file, tags)
        return "merged"
    path = existing_tag_file or new_sidecar_path(image, args.sidecar_style, stems_taken)
    write_text_atomically(path, format_tags(tags, args.sep.replace("\\n", "\n")))
    return "written"
