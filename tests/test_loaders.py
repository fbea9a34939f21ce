"""A run's DataLoaders: augmentation only when asked, and images kept in memory only within --cache-mb."""

import pytest
import torch
from conftest import FAST_TRAINING

import train
from common.dataset import ImageTagDataset
from common.distributed import Processes
from common.folder_scan import load_training_data
from common.image_cache import DecodedImages
from common.loaders import augments, make_loaders
from common.split import split_train_validation


def settings(*flags):
    return train.get_args_parser().parse_settings(list(map(str, flags)), use_environment=False)


def test_augmentation_is_off_unless_asked_for_and_never_on_cached_features():
    assert augments(settings("--weights", "imagenet")) == augments(settings("--weights", "none")) == "off"
    assert augments(settings("--weights", "none", "--augment", "on")) == "on"
    assert augments(settings("--weights", "some/file.pth", "--augment", "flip")) == "flip"
    assert augments(settings("--augment", "on", "--no-augment")) == "off"  # the later flag wins
    assert augments(settings("--augment", "on", "--freeze-backbone")) == "off"  # features are computed once


@pytest.mark.parametrize("budget, kept", [(2048, True), (0, False)])
def test_training_keeps_images_in_memory_only_within_the_budget(shapes_dataset, budget, kept):
    root, _ = shapes_dataset
    args = settings("--data", root / "train", *FAST_TRAINING, "--cache-mb", budget)
    paths, targets, _ = load_training_data(args, Processes())
    split = split_train_validation(targets, 0.25, seed=0)
    train_loader, validation_loader, _ = make_loaders(args, paths, targets, split, torch.device("cpu"), "off",
                                                   Processes())
    expected = DecodedImages if kept else ImageTagDataset
    assert isinstance(train_loader.dataset, expected) and isinstance(validation_loader.dataset, expected)
    assert (len(train_loader.dataset), len(validation_loader.dataset)) == tuple(map(len, split))
    batch = next(iter(validation_loader))
    assert batch.images.shape[1:] == (3, 32, 32) and batch.targets.shape[1] == targets.shape[1]


def test_images_read_for_features_come_once_and_in_order(shapes_dataset):
    root, _ = shapes_dataset
    args = settings("--data", root / "train", *FAST_TRAINING)
    paths, targets, _ = load_training_data(args, Processes())
    split = split_train_validation(targets, 0.25, seed=0)
    train_loader, *_ = make_loaders(args, paths, targets, split, torch.device("cpu"), "off", Processes(),
                                   for_training=False)
    assert isinstance(train_loader.dataset, ImageTagDataset)  # read once: nothing to keep
    seen = torch.cat([batch.indices for batch in train_loader]).tolist()
    assert seen == list(range(len(split[0])))
