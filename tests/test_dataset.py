"""How a folder of images and sidecar tag files is read."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from conftest import save_image
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from common.dataset import (
    ImageTagDataset,
    PackedPaths,
    build_vocabulary,
    collate_readable,
    decode_tag_bytes,
    describe_pairing_problems,
    detect_separator,
    merge_into_tag_file,
    multi_hot,
    parse_tags,
    read_tag_file,
    read_tags_of,
    scan_folder,
    split_by_rarest_tag,
    split_train_validation,
    tag_matrix,
)
from common.images import eval_transform, open_image


def test_tags_one_per_line_with_crlf_bom_spaces_blanks_and_repeats():
    text = "\ufeff cat \r\n\r\nblack cat\r\ncat\r\n  outdoors\r\n"
    assert parse_tags(text) == ["cat", "black cat", "outdoors"]


def test_tags_comma_separated_on_one_line_and_mixed():
    assert parse_tags("1girl, solo,  long hair,") == ["1girl", "solo", "long hair"]
    assert parse_tags("a, b\nc\n") == ["a", "b", "c"]


def test_empty_or_blank_tag_file_means_no_tags():
    assert parse_tags("") == []
    assert parse_tags("\n \n\t\n") == []


def test_non_utf8_tag_files_are_decoded_by_fallback():
    assert decode_tag_bytes("café\n".encode("cp1252")) == "café\n"
    assert decode_tag_bytes("naïve\n".encode("utf-16")) == "naïve\n"
    assert decode_tag_bytes("\ufeffcat\n".encode("utf-8")) == "cat\n"
    # 0x81 is undefined in Windows-1252, so Latin-1, which maps every byte, takes over
    assert decode_tag_bytes(b"\x81 caf\xe9") == "\x81 café"


@given(st.text())
def test_parsed_tags_are_clean_unique_and_stable(text):
    tags = parse_tags(text)
    assert len(tags) == len(set(tags))
    assert all(tag and tag == tag.strip() and "," not in tag and "\n" not in tag for tag in tags)
    assert parse_tags("\n".join(tags)) == tags  # writing tags one per line and reading them back is lossless


def test_sidecar_pairing_prefers_full_name_then_stem(tmp_path):
    save_image(tmp_path / "cat1.jpg")
    (tmp_path / "cat1.jpg.txt").write_text("from full name\n")
    (tmp_path / "cat1.txt").write_text("from stem\n")
    save_image(tmp_path / "dog.png")
    (tmp_path / "dog.txt").write_text("dog\n")
    scan = scan_folder(tmp_path)
    assert read_tag_file(scan.tag_file_of[tmp_path / "cat1.jpg"]) == ["from full name"]
    assert read_tag_file(scan.tag_file_of[tmp_path / "dog.png"]) == ["dog"]
    assert scan.orphan_tag_files == [tmp_path / "cat1.txt"]  # the stem file lost to the full-name file


def test_scan_finds_every_extension_in_any_case_and_skips_junk(tmp_path):
    for name in ["a.jpg", "b.JPEG", "c.Png", "d.webp", "e.BMP", "f.gif"]:
        save_image(tmp_path / name)
    save_image(tmp_path / "._a.jpg")  # macOS resource fork
    save_image(tmp_path / ".hidden.png")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "Thumbs.db").write_bytes(b"\0\0")
    (tmp_path / "notes.md").write_text("not an image")
    save_image(tmp_path / "sub" / "deep.jpg")
    names = [path.name for path in scan_folder(tmp_path).images]
    assert names == ["a.jpg", "b.JPEG", "c.Png", "d.webp", "e.BMP", "f.gif"]
    assert "deep.jpg" in [path.name for path in scan_folder(tmp_path, recursive=True).images]


def test_untagged_images_and_orphan_tag_files_are_named(tmp_path):
    save_image(tmp_path / "tagged.jpg")
    (tmp_path / "tagged.jpg.txt").write_text("x\n")
    save_image(tmp_path / "lonely.jpg")
    (tmp_path / "ghost.png.txt").write_text("y\n")
    scan = scan_folder(tmp_path)
    assert scan.untagged_images == [tmp_path / "lonely.jpg"]
    assert scan.orphan_tag_files == [tmp_path / "ghost.png.txt"]
    report = "\n".join(describe_pairing_problems(scan))
    assert "lonely.jpg" in report and "ghost.png.txt" in report


def test_vocabulary_is_sorted_and_multi_hot_matches_it():
    vocabulary = build_vocabulary([["dog", "cat"], ["zebra", "cat"], []])
    assert vocabulary == ["cat", "dog", "zebra"]
    assert multi_hot([["dog", "cat"], []], vocabulary).tolist() == [[1, 1, 0], [0, 0, 0]]


def test_split_is_seeded_disjoint_and_complete():
    targets = (np.random.default_rng(0).random((50, 4)) < 0.3).astype(int)
    train, validation = split_train_validation(targets, 0.2, seed=3)
    assert (train, validation) == split_train_validation(targets, 0.2, seed=3)
    assert split_train_validation(targets, 0.2, seed=4) != (train, validation)
    assert len(validation) == 10 and sorted(train + validation) == list(range(50))
    assert len(split_train_validation(targets[:3], 0.1, seed=0)[1]) == 1  # a tiny set still gets one
    assert split_train_validation(targets, 0.0, seed=0) == (list(range(50)), [])
    assert len(split_train_validation(targets[:, :1], 0.2, seed=0)[1]) == 10  # a single tag works too


def test_split_sends_rare_tags_to_validation_in_proportion():
    targets = np.zeros((100, 3), dtype=int)
    targets[:50, 0] = 1
    targets[::20, 1] = 1  # a rare tag: 5 images
    targets[::25, 2] = 1  # rarer still: 4 images
    for seed in range(5):
        _, validation = split_train_validation(targets, 0.2, seed=seed)
        assert targets[validation].sum(0).tolist() == [10, 1, 1]


def test_unreadable_image_is_reported_not_raised(tmp_path):
    good = save_image(tmp_path / "good.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    dataset = ImageTagDataset([good, broken, empty], eval_transform(32), targets=torch.eye(3))
    batch = collate_readable([dataset[i] for i in range(3)])
    assert batch.images.shape == (1, 3, 32, 32)
    assert batch.indices.tolist() == [0] and batch.targets.tolist() == [[1, 0, 0]]
    assert [position for position, _ in batch.unreadable] == [1, 2]
    assert all("Pillow can read" in reason for _, reason in batch.unreadable)


def test_images_are_upright_rgb_whatever_their_mode(tmp_path):
    rgba = Image.new("RGBA", (8, 4), (0, 0, 0, 0))
    rgba.save(tmp_path / "transparent.png")
    assert open_image(tmp_path / "transparent.png").getpixel((0, 0)) == (255, 255, 255)
    Image.new("CMYK", (8, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert open_image(tmp_path / "cmyk.jpg").mode == "RGB"
    Image.new("I;16", (8, 4), 65535).save(tmp_path / "grey16.png")
    assert open_image(tmp_path / "grey16.png").getpixel((0, 0)) == (255, 255, 255)
    rotated = Image.new("RGB", (8, 4), (10, 20, 30))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    assert open_image(tmp_path / "rotated.jpg").size == (4, 8)


def test_merging_keeps_existing_tags_order_and_comma_style(tmp_path):
    lines = tmp_path / "a.jpg.txt"
    lines.write_text("b\na\n")
    assert merge_into_tag_file(lines, ["a", "c"])
    assert lines.read_text() == "b\na\nc\n"
    assert not merge_into_tag_file(lines, ["c"])  # nothing new: the file is left alone
    commas = tmp_path / "b.txt"
    commas.write_text("x, y")
    merge_into_tag_file(commas, ["z"])
    assert commas.read_text() == "x, y, z"
    assert detect_separator("x, y") == ", " and detect_separator("x\ny") == "\n"


def test_sparse_tag_matrix_equals_multi_hot_and_feeds_the_dataset_alike(tmp_path):
    tag_lists = [["dog", "cat"], [], ["zebra", "unknown"], ["cat"]]
    vocabulary = ["cat", "dog", "zebra"]
    sparse = tag_matrix(tag_lists, vocabulary)
    assert scipy.sparse.issparse(sparse)
    assert np.array_equal(sparse.toarray(), multi_hot(tag_lists, vocabulary).numpy())
    images = [save_image(tmp_path / f"{number}.png") for number in range(4)]
    dense_set = ImageTagDataset(images, eval_transform(32), multi_hot(tag_lists, vocabulary))
    sparse_set = ImageTagDataset(images, eval_transform(32), sparse)
    for position in range(4):
        assert torch.equal(dense_set[position][1], sparse_set[position][1])


def random_tagging(images, tags, seed):
    """An (images x tags) sparse 0/1 matrix with a long tail of rare tags, as on booru sites."""
    generator = np.random.default_rng(seed)
    weights = 1 / np.arange(1, tags + 1) ** 1.1
    rows = [generator.choice(tags, size=generator.integers(0, 6), replace=False, p=weights / weights.sum())
            for _ in range(images)]
    return tag_matrix([[str(tag) for tag in row] for row in rows], [str(tag) for tag in range(tags)])


def test_large_set_split_is_seeded_complete_and_shares_out_every_tag():
    targets = random_tagging(4000, 300, seed=0)
    train, validation = split_by_rarest_tag(targets, 400, seed=1)
    assert (train, validation) == split_by_rarest_tag(targets, 400, seed=1)
    assert len(validation) == 400 and sorted(train + validation) == list(range(4000))
    counts = np.asarray(targets.sum(0)).ravel()
    in_validation = np.asarray(targets[validation].sum(0)).ravel()
    generator = np.random.default_rng(1)
    random_split = generator.permutation(4000)[:400]
    in_random = np.asarray(targets[random_split].sum(0)).ravel()
    frequent_enough = counts >= 10  # tags that 10 % should reach at least once
    assert (in_validation[frequent_enough] >= 1).all()
    # much closer to each tag's 10 % share than a random split gets
    assert np.abs(in_validation - counts / 10).sum() < 0.5 * np.abs(in_random - counts / 10).sum()


def test_split_switches_to_the_one_pass_method_for_very_large_sets(monkeypatch):
    import common.dataset

    targets = random_tagging(500, 40, seed=2)
    monkeypatch.setattr(common.dataset, "ITERATIVE_STRATIFICATION_LIMIT", 500 * 40 - 1)
    assert split_train_validation(targets, 0.1, seed=3) == split_by_rarest_tag(targets, 50, seed=3)


def tagged_folder(folder, count):
    for number in range(count):
        save_image(folder / f"{number}.png")
        (folder / f"{number}.png.txt").write_text(f"tag{number}\nshared\n")
    return folder


def test_tag_index_rereads_only_the_tag_files_that_changed(tmp_path):
    folder = tagged_folder(tmp_path / "images", 4)
    index = tmp_path / "index.json"
    first = read_tags_of(scan_folder(folder), index)
    assert first == read_tags_of(scan_folder(folder))  # the same tags as without an index
    assert set(json.loads(index.read_text())["files"]) == {f"{number}.png.txt" for number in range(4)}

    edited = folder / "1.png.txt"
    edited.write_text("new tag\n")
    save_image(folder / "9.png")
    (folder / "9.png.txt").write_text("added\n")
    (folder / "3.png").unlink()
    # Same size, same time: the index trusts it (as make and rsync would) instead of reading it
    unchanged = folder / "2.png.txt"
    stamp = os.stat(unchanged)
    unchanged.write_text("tag8\nshared\n")
    os.utime(unchanged, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))

    again = {image.name: tags for image, tags in read_tags_of(scan_folder(folder), index).items()}
    assert again == {"0.png": ["tag0", "shared"], "1.png": ["new tag"], "2.png": ["tag2", "shared"],
                     "9.png": ["added"]}
    assert set(json.loads(index.read_text())["files"]) == {"0.png.txt", "1.png.txt", "2.png.txt", "9.png.txt"}


def test_a_damaged_or_foreign_tag_index_is_rebuilt(tmp_path):
    folder = tagged_folder(tmp_path / "images", 2)
    other = tagged_folder(tmp_path / "other", 2)
    index = tmp_path / "index.json"
    read_tags_of(scan_folder(other), index)
    (other / "0.png.txt").write_text("different\n")
    assert read_tags_of(scan_folder(folder), index) == read_tags_of(scan_folder(folder))  # not the other's tags
    index.write_text("{ not json")
    assert read_tags_of(scan_folder(folder), index) == read_tags_of(scan_folder(folder))
    assert json.loads(index.read_text())["folder"] == str(folder.resolve())


def test_packed_paths_read_like_the_list_they_came_from(tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "sub dir" / "ü é.jpg", Path("relative/x.webp")]
    packed = PackedPaths(paths)
    assert len(packed) == 3 and list(packed) == paths and packed[-1] == paths[-1] and packed[1:] == paths[1:]
    assert set(packed) == set(paths)
    with pytest.raises(IndexError):
        packed[3]
    assert list(PackedPaths([])) == []
