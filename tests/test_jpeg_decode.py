"""--decode gpu's path, run here with the CPU as the device (torchvision's CPU decode_jpeg stands in
for nvJPEG): the same pixels as the PIL path within a small tolerance, the same fallbacks for
everything nvJPEG should not decode, and unreadable files named exactly as on the CPU path."""

import numpy as np
import pytest
import torch
from conftest import colourful, write_awkward_valid_images, write_unreadable_files
from PIL import Image
from torch.utils.data import DataLoader

from common.dataset import ImageTagDataset, collate_readable
from common.errors import UserError
from common.transforms import decode_transform
from common.jpeg_decode import EncodedJpegs, JpegFile, decode_on_device, resolve_decode

CPU = torch.device("cpu")
SIZE = 64


def photo(path, size=(640, 480), seed=0):
    """A JPEG with a photo's smooth shapes and fine detail, larger than the model's input."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-10, 11, (size[1], size[0], 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def batches(dataset):
    return list(DataLoader(dataset, batch_size=4, collate_fn=collate_readable))


def test_plain_jpegs_are_read_as_bytes_and_everything_else_is_decoded_by_the_workers(tmp_path):
    jpeg = photo(tmp_path / "photo.jpg")
    names = write_awkward_valid_images(tmp_path)  # CMYK and EXIF-rotated JPEGs, PNG, WebP, GIF...
    dataset = EncodedJpegs([jpeg, *(tmp_path / name for name in names)], SIZE)
    served = {dataset.paths[position].name: dataset[position][0] for position in range(len(dataset))}
    assert isinstance(served["photo.jpg"], JpegFile) and isinstance(served["UPPER.JPG"], JpegFile)
    for name in ("cmyk.jpg", "palette transparent.png", "photo.webp", "animated.gif", "grey16.png"):
        assert isinstance(served[name], torch.Tensor) and served[name].shape == (3, SIZE, SIZE), name


def test_device_decoding_gives_the_pixels_of_the_pil_path(tmp_path):
    files = [photo(tmp_path / f"photo_{seed}.jpg", seed=seed) for seed in range(3)]
    rotated = colourful((96, 48), seed=6)
    exif = rotated.getexif()
    exif[0x0112] = 6  # displayed turned by 90 degrees
    rotated.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    files.append(tmp_path / "rotated.jpg")
    on_device = torch.cat([decode_on_device(batch, dataset, CPU).images
                           for dataset in [EncodedJpegs(files, SIZE)] for batch in batches(dataset)])
    with_pil = torch.cat([batch.images for batch in batches(ImageTagDataset(files, decode_transform(SIZE),
                                                                            decode_size=SIZE))])
    assert on_device.shape == with_pil.shape == (4, 3, SIZE, SIZE) and on_device.dtype == torch.uint8
    difference = (on_device.float() - with_pil.float()).abs()
    # PIL decodes large JPEGs at a reduced size (draft mode) and both resize with antialiasing,
    # so the pictures are the same up to small rounding and filtering differences
    assert difference.mean() < 3 and difference.max() < 60, (difference.mean(), difference.max())


def test_unreadable_files_are_named_with_the_same_reason_as_on_the_cpu_path(tmp_path):
    good = photo(tmp_path / "good.jpg")
    bad = write_unreadable_files(tmp_path)
    looks_fine = tmp_path / "corrupt_inside.jpg"  # a valid header, then garbage: only decoding finds out
    looks_fine.write_bytes(good.read_bytes()[:600] + bytes(range(256)) * 40)
    files = [good, *(tmp_path / name for name in bad), looks_fine]
    targets = torch.eye(len(files))
    device_batches = [decode_on_device(batch, dataset, CPU) for dataset in [EncodedJpegs(files, SIZE, targets)]
                      for batch in batches(dataset)]
    cpu_batches = batches(ImageTagDataset(files, decode_transform(SIZE), targets, decode_size=SIZE))
    reasons = {position: reason for batch in device_batches for position, reason in batch.unreadable}
    expected = {position: reason for batch in cpu_batches for position, reason in batch.unreadable}
    assert set(reasons) == set(range(1, len(files))) and reasons.keys() == expected.keys()
    for position, reason in expected.items():
        if files[position] != looks_fine:  # found by PIL in both cases
            assert reasons[position] == reason
    kept = [batch for batch in device_batches if batch.images is not None]
    assert [batch.indices.tolist() for batch in kept] == [[0]] and torch.equal(kept[0].targets, targets[:1])


def test_auto_decodes_on_the_gpu_only_when_there_is_one():
    assert resolve_decode("auto", torch.device("cuda")) == "gpu"
    assert resolve_decode("auto", CPU) == "cpu" and resolve_decode("cpu", torch.device("cuda")) == "cpu"
    with pytest.raises(UserError, match="--decode gpu decodes JPEGs with nvJPEG on a CUDA GPU"):
        resolve_decode("gpu", CPU)
