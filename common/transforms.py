"""Pictures as the network's input: resizing to uint8 pixels, normalising, and the random changes
of training. Shared by training, validation and inference, so that all three see the same pixels."""

import torch
from torchvision.transforms import v2

# The statistics every torchvision ImageNet model was trained with; also used from scratch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def decode_transform(image_size):
    """The part of the eval transform that never changes between epochs: squash the whole picture
    to a square (cropping could cut a tagged object out), as uint8 pixels. Training keeps its
    output in memory (see common/image_cache.py)."""
    return v2.Compose([
        v2.Resize((image_size, image_size), antialias=True),  # on the PIL image, before the tensor exists
        v2.PILToTensor(),
    ])


def normalize_transform(mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """uint8 pixels to the float input the network was trained on."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def normalize_batch(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """A batch of uint8 pixels, already on its device, as the network's float input; a float batch
    (normalised by its transform) is returned as it is. Loaders send uint8 pixels, a quarter of the
    bytes of floats, and the device normalises the whole batch in one step: nothing per image runs
    in the main process."""
    if images.dtype != torch.uint8:
        return images
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1) * 255
    return (images.float() - mean) / std


def augmentations(image_size):
    """Light augmentation: most of the picture stays in view, so tagged objects rarely leave it.
    Works on PIL images and on uint8 tensors alike."""
    return [
        v2.RandomResizedCrop((image_size, image_size), scale=(0.7, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
    ]


def eval_transform(image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """An image file's picture as the network's input, in validation and inference alike."""
    return v2.Compose([decode_transform(image_size), normalize_transform(mean, std)])


def train_transform(image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """The eval transform with random augmentation, for training only."""
    return v2.Compose([*augmentations(image_size), v2.PILToTensor(), normalize_transform(mean, std)])


def kept_pixels_transform(image_size, augmented):
    """For pixels that decode_transform made once and training keeps in memory: the crops and colour
    changes of the train transform, on the uint8 pixels (augmenting a kept, already resized picture
    is a little blurrier than augmenting the file's full-size one, and far cheaper); without
    augmentation, nothing. Either way the pixels go to the device as uint8, where random_flips and
    normalize_batch finish them a batch at a time."""
    if not augmented:
        return v2.Identity()
    return v2.Compose([transform for transform in augmentations(image_size)
                       if not isinstance(transform, v2.RandomHorizontalFlip)])


def random_flips(images):
    """Each picture of a batch mirrored left to right with probability one half, on its device."""
    mirrored = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(mirrored.view(-1, 1, 1, 1), images.flip(-1), images)
