"""Scanning a folder: pairing images with tag files, the tag index, the vocabulary and the tag matrix."""

import json
import os

import numpy as np
import scipy.sparse
import torch
from conftest import colourful, save_image, write_os_junk

from common.dataset import ImageTagDataset
from common.folder_scan import (
    build_vocabulary,
    describe_pairing_problems,
    multi_hot,
    read_tags_of,
    scan_folder,
    tag_matrix,
)
from common.transforms import eval_transform
from common.tagfiles import read_tag_file


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


def test_sparse_tag_matrix_equals_multi_hot_and_feeds_the_dataset_alike(tmp_path):
    tag_lists = [["dog", "cat"], [], ["zebra", "unknown"], ["cat"]]
    vocabulary = ["cat", "dog", "zebra"]
    sparse = tag_matrix(tag_lists, vocabulary)
    assert scipy.sparse.issparse(sparse)
    assert np.array_equal(sparse.toarray(), multi_hot(tag_lists, vocabulary))
    images = [save_image(tmp_path / f"{number}.png") for number in range(4)]
    dense_set = ImageTagDataset(images, eval_transform(32), torch.from_numpy(multi_hot(tag_lists, vocabulary)))
    sparse_set = ImageTagDataset(images, eval_transform(32), sparse)
    for position in range(4):
        assert torch.equal(dense_set[position][1], sparse_set[position][1])


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


def test_scan_ignores_os_junk_and_subfolders_unless_recursive(tmp_path):
    write_os_junk(tmp_path)
    colourful().save(tmp_path / "real.png")
    assert [image.name for image in scan_folder(tmp_path).images] == ["real.png"]
    assert sorted(image.name for image in scan_folder(tmp_path, recursive=True).images) == ["nested.png", "real.png"]
