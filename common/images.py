"""Image files: which files are pictures, opening them as RGB, and why one could not be read.
Imports Pillow and NumPy alone, so that prepare.py's folder commands never load torch; the
tensors the network sees are made in common/transforms.py."""

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}

# Transparent pixels are flattened onto this colour, in training and inference alike, so a
# transparent PNG looks the same to the model at both stages.
TRANSPARENCY_BACKGROUND = (255, 255, 255)

def is_image_file(path):
    """By extension alone (a str or a Path), so that scanning a folder never opens a file."""
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def open_image(path, min_size=None):
    """Read an image file as an RGB PIL image, upright according to its EXIF orientation.

    min_size: lets a JPEG decoder skip detail the model will never see, by decoding at a
    fraction (1/2, 1/4, 1/8) of full size as long as both sides stay at least this large.
    Animated images give their first frame. Raises OSError or ValueError on unreadable files.
    """
    with Image.open(path) as image:
        if min_size and image.format == "JPEG":
            image.draft("RGB", (min_size, min_size))
        image = ImageOps.exif_transpose(image)  # returns a loaded copy, so closing the file is safe
        return to_rgb(image)


def to_rgb(image):
    """Convert any PIL mode to RGB: transparency is flattened, 16-bit greys are scaled down."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, TRANSPARENCY_BACKGROUND)
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        return flattened
    if image.mode.startswith("I") or image.mode == "F":
        # 16- and 32-bit greys: a plain convert() would clip everything above 255 to white.
        values = np.asarray(image, dtype=np.float64)
        sixteen_bit = image.mode.startswith("I;16") or values.max(initial=0) > 255
        peak = 65535.0 if sixteen_bit else 255.0
        grey = np.clip(values / peak * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")  # L, P, CMYK, YCbCr, ...


def describe_read_error(error):
    """A short reason for an unreadable image, without the path (the caller names the file)."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image format Pillow can read (empty, corrupt or mislabelled file)"
    if isinstance(error, Image.DecompressionBombError):
        return (f"{error} Shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file "
                "(a decompression bomb is a tiny file that expands to exhaust memory)")
    text = str(error)
    if "truncated" in text:
        return "the file is truncated (an incomplete download?)"
    return f"{type(error).__name__}: {text}"
