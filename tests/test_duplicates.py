"""Near-duplicates: changed copies of real photographs join their originals, distinct pictures stay
apart, identical files are found even when unreadable, and fingerprints are reused from the cache."""

import os
import random

import numpy as np
import pytest
from conftest import changed_copies, distinct_photos
from PIL import Image, ImageFilter

from common.duplicates import (NEAR_DISTANCE, closest_looks, find_duplicates, fingerprint_cache_path,
                               fingerprint_files, trim_uniform_border)


@pytest.fixture
def reposts(tmp_path):
    """Four photos and five changed copies of each under random names; returns (folder, {name: original})."""
    folder, original_of = tmp_path / "reposts", {}
    folder.mkdir()
    names = random.Random(0)
    for original, picture in distinct_photos().items():
        picture.save(folder / f"{original}.png")
        original_of[f"{original}.png"] = original
        for kind, copy in changed_copies(picture).items():
            name = f"{names.getrandbits(40):010x}.jpg"
            copy.save(folder / name, quality=50 if kind == "reencoded" else 90)
            original_of[name] = original
    return folder, original_of


def test_each_changed_copy_joins_its_original_and_distinct_pictures_stay_apart(reposts):
    folder, original_of = reposts
    paths = sorted(folder.iterdir())
    found = find_duplicates(paths)
    groups = [sorted(paths[row].name for row in group) for group in found.groups]
    expected = [sorted(name for name, original in original_of.items() if original == which)
                for which in sorted(set(original_of.values()))]
    assert sorted(groups) == sorted(expected)
    assert not found.identical and not found.unreadable


def test_identical_files_are_a_group_even_when_no_decoder_can_read_them(reposts, tmp_path):
    folder, _ = reposts
    (folder / "broken.jpg").write_bytes(b"not a picture at all")
    (folder / "broken copy.jpg").write_bytes(b"not a picture at all")
    (folder / "china_left again.png").write_bytes((folder / "china_left.png").read_bytes())
    paths = sorted(folder.iterdir())
    found = find_duplicates(paths)
    groups = [{paths[row].name for row in group} for group in found.groups]
    broken = groups.index({"broken.jpg", "broken copy.jpg"})
    assert broken in found.identical
    assert any({"china_left.png", "china_left again.png"} < group for group in groups)  # with its changed copies
    assert set(found.unreadable) == {folder / "broken.jpg", folder / "broken copy.jpg"}
    assert all("not an image format" in reason for reason in found.unreadable.values())


def test_a_frame_is_trimmed_to_the_picture_inside_it():
    picture = distinct_photos()["flower_left"]
    for colour in ((255, 255, 255), (0, 0, 0), (30, 160, 90)):
        framed = Image.new("RGB", (picture.width + 30, picture.height + 50), colour)
        framed.paste(picture, (10, 30))
        trimmed = trim_uniform_border(framed)
        # found on a copy of at most 128 pixels, so to within 2 % of the side
        assert abs(trimmed.width - picture.width) <= 0.02 * framed.width, colour
        assert abs(trimmed.height - picture.height) <= 0.02 * framed.height, colour
    assert trim_uniform_border(picture).size == picture.size  # a photo's edges are not a border


def thumbnail_with_a_shadow(photo):
    """A 64-pixel drawing as icon themes make them: a picture on white over a soft grey shadow."""
    canvas = Image.new("RGB", (64, 64), (255, 255, 255))
    shadow = Image.new("L", (64, 64), 0)
    shadow.paste(60, (12, 14, 58, 60))
    canvas.paste(Image.new("RGB", (64, 64), (0, 0, 0)), (0, 0), shadow.filter(ImageFilter.GaussianBlur(3)))
    canvas.paste(photo.resize((44, 44), Image.LANCZOS), (9, 9))
    return canvas


def test_a_small_drawing_re_encoded_joins_its_original_though_its_border_trims_differently(tmp_path):
    # JPEG ringing in the shadow moves the trimmed border of the copy by a few pixels: the trimmed
    # looks disagree, the pictures as they are do not; and four drawings of one layout stay apart
    folder = tmp_path / "icons"
    folder.mkdir()
    for number, photo in enumerate(distinct_photos().values()):
        drawing = thumbnail_with_a_shadow(photo)
        drawing.save(folder / f"icon{number}.png")
        drawing.save(folder / f"icon{number}-copy.jpg", quality=40)
    paths = sorted(folder.iterdir())
    found = find_duplicates(paths)
    assert sorted(sorted(paths[row].stem for row in group) for group in found.groups) == [
        [f"icon{number}", f"icon{number}-copy"] for number in range(4)]
    looks = fingerprint_files(paths).looks
    trimmed_alone = closest_looks(looks, np.arange(0, 8, 2), np.arange(1, 8, 2))  # copy, original
    assert (trimmed_alone < 1 - NEAR_DISTANCE).any()  # what the untrimmed looks add


def test_fingerprints_of_unchanged_files_come_from_the_cache(reposts, tmp_path):
    folder, _ = reposts
    paths = sorted(folder.iterdir())
    cache = fingerprint_cache_path(tmp_path / "index.json")
    first = fingerprint_files(paths, cache_path=cache, folder=folder)
    assert cache.is_file()
    # Another picture of the same size and time: by size and time unchanged, so its kept fingerprint is used
    unchanged, changed = folder / "china_left.png", folder / "flower_left.png"
    status = os.stat(unchanged)
    noise = np.random.default_rng(0).integers(0, 256, (427, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(unchanged)
    unchanged.write_bytes(unchanged.read_bytes()[:status.st_size].ljust(status.st_size, b"\0"))
    os.utime(unchanged, ns=(status.st_atime_ns, status.st_mtime_ns))
    distinct_photos()["china_right"].save(changed)  # a new picture at a new time: computed again
    second = fingerprint_files(paths, cache_path=cache, folder=folder)
    row, other = paths.index(unchanged), paths.index(changed)
    assert np.array_equal(second.looks[row], first.looks[row]) and second.readable[row]
    assert not np.array_equal(second.looks[other], first.looks[other])
    assert np.array_equal(second.looks[other], first.looks[paths.index(folder / "china_right.png")])
