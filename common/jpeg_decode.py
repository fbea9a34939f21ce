"""--decode gpu: JPEGs decoded in batches on the GPU (nvJPEG, through torchvision.io.decode_jpeg)
and resized there, so that a fast GPU is not left waiting for the CPU to decode photos.

The loader's workers only read each JPEG's bytes. Whatever nvJPEG should not handle goes the
usual way, decoded and resized by the workers with PIL: PNG, WebP, GIF and BMP files, CMYK and
other unusual JPEGs, and files that are not what their name says. A JPEG that the device cannot
decode after all is decoded again with PIL, and if that fails too it is named as unreadable with
PIL's reason, exactly as on the CPU path. The same code runs with the CPU as its device, which
is how the tests check it against the PIL path.

torchvision 0.29 marks its image decoders as deprecated in favour of TorchCodec; they still work,
and their warning is kept out of a user's output here until TorchCodec's GPU JPEG decoder is the
one to use.
"""

import warnings

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import functional

from common.dataset import Batch, ImageTagDataset
from common.errors import UserError
from common.transforms import decode_transform



def resolve_decode(choice, device):
    """auto decodes on the GPU when there is one (nvJPEG outpaces any CPU on photos), else on the CPU."""
    if choice == "auto":
        return "gpu" if device.type == "cuda" else "cpu"
    if choice == "gpu" and device.type != "cuda":
        raise UserError(f"--decode gpu decodes JPEGs with nvJPEG on a CUDA GPU, and this run uses {device}: "
                        "use --decode cpu or auto")
    return choice


def is_plain_jpeg(path):
    """A baseline or progressive RGB or greyscale JPEG, judged from its header alone (nothing decoded)."""
    with Image.open(path) as image:
        return image.format == "JPEG" and image.mode in ("RGB", "L")


class JpegFile:
    """A JPEG file's bytes as a 1-D uint8 tensor, not yet decoded: what EncodedJpegs serves."""

    def __init__(self, data):
        self.data = data


class EncodedJpegs(ImageTagDataset):
    """An ImageTagDataset whose plain JPEGs come out as their file's bytes (JpegFile), to be decoded
    on the device by decode_on_device; every other file is decoded here, as usual."""

    def __init__(self, paths, image_size, targets=None):
        super().__init__(paths, decode_transform(image_size), targets, decode_size=image_size)

    def __getitem__(self, position):
        path = self.paths[position]
        try:
            if is_plain_jpeg(path):
                with warnings.catch_warnings(category=DeprecationWarning, action="ignore"):
                    return JpegFile(read_file(str(path))), self.target(position), position, None
        except Exception:  # not even a readable header: the PIL path below names the problem
            pass
        return super().__getitem__(position)


def decode_on_device(batch, dataset, device):
    """A batch whose images are all decoded, resized and on `device` as uint8 pixels. Batches from
    other datasets (already decoded tensors) pass through untouched."""
    if not isinstance(batch.images, list):
        return batch
    size = dataset.decode_size
    encoded = [number for number, image in enumerate(batch.images) if isinstance(image, JpegFile)]
    pictures = {number: image.to(device, non_blocking=True) for number, image in enumerate(batch.images)
                if not isinstance(image, JpegFile)}
    pictures |= dict(zip(encoded, _decode_jpegs([batch.images[number].data for number in encoded], device)))
    unreadable, kept = list(batch.unreadable), []
    for number, position in enumerate(batch.indices.tolist()):
        picture = pictures[number]
        if picture is None:  # the device refused it: the workers' PIL path decodes it, or says why it cannot
            picture, _, _, reason = ImageTagDataset.__getitem__(dataset, position)
            if reason is not None:
                unreadable.append((position, reason))
                continue
            picture = picture.to(device)
        elif picture.shape[-2:] != (size, size):
            picture = functional.resize(picture, [size, size], antialias=True)
        pictures[number] = picture
        kept.append(number)
    if not kept:
        return Batch(None, None, batch.indices[:0], unreadable)
    images = torch.stack([pictures[number] for number in kept])
    targets = batch.targets[kept] if batch.targets is not None else None
    return Batch(images, targets, batch.indices[kept], unreadable)


def _decode_jpegs(encoded, device):
    """Decoded CHW uint8 pictures, upright by their EXIF orientation, in one batched call; None for
    each JPEG the decoder refuses (found by decoding them one at a time after a failed batch)."""
    if not encoded:
        return []
    options = dict(mode=ImageReadMode.RGB, apply_exif_orientation=True, device=device)
    with warnings.catch_warnings(category=DeprecationWarning, action="ignore"):
        try:
            return decode_jpeg(encoded, **options)
        except RuntimeError:
            decoded = []
            for data in encoded:
                try:
                    decoded.append(decode_jpeg(data, **options))
                except RuntimeError:
                    decoded.append(None)
            return decoded
