"""How a folder of images and sidecar tag files is read."""

from pathlib import Path

import pytest
import torch
from conftest import save_image

from common.dataset import ImageTagDataset, PackedPaths, collate_readable
from common.transforms import eval_transform


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


def test_packed_paths_read_like_the_list_they_came_from(tmp_path):
    paths = [tmp_path / "a.png", tmp_path / "sub dir" / "ü é.jpg", Path("relative/x.webp")]
    packed = PackedPaths(paths)
    assert len(packed) == 3 and list(packed) == paths and packed[-1] == paths[-1] and packed[1:] == paths[1:]
    assert set(packed) == set(paths)
    with pytest.raises(IndexError):
        packed[3]
    assert list(PackedPaths([])) == []
