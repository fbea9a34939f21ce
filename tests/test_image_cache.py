"""Training images decoded once and kept in memory serve exactly what decoding every epoch would."""

import torch
from torch.utils.data import DataLoader

from common.dataset import Batch, ImageTagDataset, UnreadableImages, collate_readable
from common.folder_scan import scan_folder
from common.image_cache import cache_size_mb, decode_into_memory
from common.transforms import decode_transform, eval_transform, kept_pixels_transform


def images_with_a_broken_one(shapes_dataset):
    root, _ = shapes_dataset
    images = scan_folder(root / "train").images[:6]
    broken = root / "train" / "broken.jpg"
    broken.write_bytes(b"not a picture")
    return [*images[:3], broken, *images[3:]]


def test_kept_pixels_give_the_same_samples_as_decoding_the_files(shapes_dataset):
    images = images_with_a_broken_one(shapes_dataset)
    targets = torch.eye(len(images))
    from_files = ImageTagDataset(images, decode_transform(32), targets, decode_size=32)  # what loaders use
    kept = decode_into_memory(from_files, 32, kept_pixels_transform(32, augmented=False), workers=0)
    assert len(kept) == len(from_files) and list(kept.paths) == list(from_files.paths)
    for position in range(len(images)):
        decoded, remembered = from_files[position], kept[position]
        if images[position].name == "broken.jpg":
            assert decoded[0] is None and remembered[0] is None and remembered[3] == decoded[3]
        else:
            assert torch.equal(decoded[0], remembered[0])
            assert torch.equal(decoded[1], remembered[1]) and remembered[2] == position and remembered[3] is None


def test_a_kept_unreadable_image_is_still_named(shapes_dataset, capsys):
    images = images_with_a_broken_one(shapes_dataset)
    from_files = ImageTagDataset(images, eval_transform(32), torch.zeros(len(images), 2), decode_size=32)
    kept = decode_into_memory(from_files, 32, kept_pixels_transform(32, augmented=False), workers=0)
    unreadable = UnreadableImages()
    broken = [position for position in range(len(kept)) if kept[position][3] is not None]
    unreadable.add(kept, [(position, kept[position][3]) for position in broken])
    assert broken == [3] and "broken.jpg" in capsys.readouterr().out


def test_augmented_kept_pixels_change_every_time_but_keep_their_size(shapes_dataset):
    root, _ = shapes_dataset
    images = scan_folder(root / "train").images[:4]
    from_files = ImageTagDataset(images, eval_transform(32), torch.zeros(4, 2), decode_size=32)
    kept = decode_into_memory(from_files, 32, kept_pixels_transform(32, augmented=True), workers=0)
    torch.manual_seed(0)
    first, second = torch.stack([kept[p][0] for p in range(4)]), torch.stack([kept[p][0] for p in range(4)])
    # still uint8 pixels: flips and normalisation happen a batch at a time on the device
    assert first.shape == second.shape == (4, 3, 32, 32) and first.dtype == torch.uint8
    assert not torch.equal(first, second)


def test_cache_size_is_three_bytes_per_pixel():
    assert cache_size_mb(1024, 64) == 12.0


def test_kept_pixels_come_a_whole_batch_at_a_time_with_the_same_content(shapes_dataset):
    images = images_with_a_broken_one(shapes_dataset)
    targets = torch.eye(len(images))
    from_files = ImageTagDataset(images, decode_transform(32), targets, decode_size=32)
    kept = decode_into_memory(from_files, 32, kept_pixels_transform(32, augmented=False), workers=0)
    whole = list(DataLoader(kept, batch_size=4, collate_fn=collate_readable))
    one_by_one = [collate_readable([kept[position] for position in range(start, min(start + 4, len(kept)))])
                  for start in range(0, len(kept), 4)]
    assert isinstance(kept.__getitems__([0, 1]), Batch)  # one gather, nothing per image
    for batch, expected in zip(whole, one_by_one, strict=True):
        assert torch.equal(batch.images, expected.images) and torch.equal(batch.targets, expected.targets)
        assert torch.equal(batch.indices, expected.indices) and batch.unreadable == expected.unreadable


def test_a_subset_of_kept_pixels_serves_its_images_and_their_unreadable_ones(shapes_dataset):
    """The label audit's folds take their images from one decoding of the whole folder."""
    images = images_with_a_broken_one(shapes_dataset)
    targets = torch.eye(len(images))
    kept = decode_into_memory(ImageTagDataset(images, decode_transform(32), targets, decode_size=32), 32,
                              kept_pixels_transform(32, augmented=False), workers=0)
    positions = [5, 3, 0]  # the broken image in the middle
    part = kept.subset(positions, kept_pixels_transform(32, augmented=False))
    assert list(part.paths) == [images[p] for p in positions] and len(part) == 3
    for new, old in enumerate(positions):
        sample, original = part[new], kept[old]
        assert sample[2] == new and sample[3] == original[3]
        if original[0] is not None:
            assert torch.equal(sample[0], original[0]) and torch.equal(sample[1], targets[old])
    batch = part.__getitems__([0, 1, 2])
    assert batch.indices.tolist() == [0, 2] and [position for position, _ in batch.unreadable] == [1]
