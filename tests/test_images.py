"""Opening image files: every valid image comes out upright RGB, whatever its mode or format."""

import torch
from conftest import write_awkward_valid_images
from PIL import Image

from common.images import open_image
from common.transforms import decode_transform, eval_transform, normalize_batch, random_flips


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


def test_every_awkward_valid_image_opens_as_upright_rgb(tmp_path):
    names = write_awkward_valid_images(tmp_path)
    for name in names:
        image = open_image(tmp_path / name)
        assert image.mode == "RGB" and min(image.size) > 0, name
    assert open_image(tmp_path / "rotated.jpg").size == (24, 48)  # EXIF orientation applied
    assert open_image(tmp_path / "grey16.png").getextrema()[0][1] > 200  # 16-bit range scaled, not clipped


def test_a_batch_normalised_on_its_device_equals_each_image_normalised_alone(tmp_path):
    names = write_awkward_valid_images(tmp_path)
    pixels = torch.stack([decode_transform(48)(open_image(tmp_path / name)) for name in names])
    assert pixels.dtype == torch.uint8
    one_by_one = torch.stack([eval_transform(48)(open_image(tmp_path / name)) for name in names])
    assert torch.allclose(normalize_batch(pixels), one_by_one, atol=1e-5)
    custom = normalize_batch(pixels, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.allclose(custom, (pixels.float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert normalize_batch(one_by_one) is one_by_one  # already normalised floats pass through


def test_random_flips_mirror_each_picture_of_a_batch_or_leave_it_as_it_is():
    torch.manual_seed(0)
    pictures = torch.arange(64 * 3 * 4 * 5, dtype=torch.float32).view(64, 3, 4, 5)
    flipped = random_flips(pictures)
    mirrored = [torch.equal(after, before.flip(-1)) for before, after in zip(pictures, flipped)]
    assert all(m or torch.equal(after, before) for m, before, after in zip(mirrored, pictures, flipped))
    assert 16 < sum(mirrored) < 48  # about half, each picture drawn on its own
