"""The demo data: coloured shapes whose tags say what is in each picture, the same for the same seed."""

import numpy as np
from PIL import Image

from common.demo import COLOURS as DEMO_COLOURS
from common.demo import write_demo_dataset
from common.folder_scan import scan_folder
from common.tagfiles import read_tag_file

COLOURS = {"red", "green", "blue", "yellow"}


def test_the_demo_folders_hold_tagged_training_images_and_untagged_ones_to_tag(tmp_path):
    truth = write_demo_dataset(tmp_path, train_count=20, infer_count=4, seed=2)
    training, to_tag = scan_folder(tmp_path / "train"), scan_folder(tmp_path / "infer")
    assert len(training.images) == len(training.tag_file_of) == 20
    assert len(to_tag.images) == 4 and not to_tag.tag_file_of and sorted(truth) == to_tag.images
    for image, tag_file in training.tag_file_of.items():
        tags = read_tag_file(tag_file)
        assert tags and set(tags) & COLOURS
        with Image.open(image) as picture:
            assert picture.size == (64, 64)


def test_a_tagged_colour_is_in_the_picture(tmp_path):
    write_demo_dataset(tmp_path, train_count=20, infer_count=0, seed=3)
    reference = {name: np.array(rgb) / 255 for name, rgb in DEMO_COLOURS.items()}
    for image, tag_file in scan_folder(tmp_path / "train").tag_file_of.items():
        pixels = np.asarray(Image.open(image).convert("RGB"), dtype=float) / 255
        for colour in set(read_tag_file(tag_file)) & COLOURS:
            close = np.abs(pixels - reference[colour]).max(axis=2) < 0.12  # within the drawing's jitter
            assert close.sum() >= 20, f"{image.name} is tagged {colour} but shows little of it"


def test_the_same_seed_gives_the_same_files(tmp_path):
    write_demo_dataset(tmp_path / "a", train_count=5, infer_count=2, seed=7)
    write_demo_dataset(tmp_path / "b", train_count=5, infer_count=2, seed=7)
    files = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*") if path.is_file())
    assert files and all((tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
                         for name in files)
