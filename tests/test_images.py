"""Opening image files: every valid image comes out upright RGB, whatever its mode or format."""


from conftest import write_awkward_valid_images
from PIL import Image

from common.images import open_image


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
