"""The training loop: every training setting reaches the run it names, and the epoch line's format."""

import pytest
import torch
from conftest import FAST_TRAINING

import train
from common.losses import AsymmetricLoss
from common.training_loop import format_epoch_line


def prepared(data, tmp_path, *flags):
    """A run set up by train.py for these flags, before its first epoch."""
    args = train.get_args_parser().parse_settings(
        ["--data", str(data), "--model", str(tmp_path / "m.pth"), *FAST_TRAINING, *map(str, flags)],
        use_environment=False)
    return train.prepare_run(args)


def test_loss_warmup_weight_decay_and_rate_reach_the_optimizer(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    run = prepared(root / "train", tmp_path, "--loss", "bce", "--warmup", "0.5", "--weight-decay", "0.2",
                   "--lr", "0.01", "--epochs", "4")
    assert isinstance(run.loss_function, torch.nn.BCEWithLogitsLoss)
    assert {group["weight_decay"] for group in run.optimizer.param_groups} == {0.2, 0.0}
    steps = 4 * (len(run.train_loader.dataset) // 8)
    warmup = round(steps * 0.5)
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / warmup)  # the first warm-up step
    default = prepared(root / "train", tmp_path, "--epochs", "4")
    assert isinstance(default.loss_function, AsymmetricLoss)
    assert {group["weight_decay"] for group in default.optimizer.param_groups} == {0.05, 0.0}
    assert default.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 / round(steps * 0.1))


def test_augment_on_gives_the_training_images_random_changes_and_off_none(shapes_dataset, tmp_path):
    root, _ = shapes_dataset

    def two_looks(run):
        dataset = run.train_loader.dataset
        return dataset[0][0], dataset[0][0]

    first, second = two_looks(prepared(root / "train", tmp_path, "--augment", "on", "--seed", "3"))
    assert first.shape == second.shape == (3, 32, 32) and not torch.equal(first, second)
    first, second = two_looks(prepared(root / "train", tmp_path, "--augment", "off"))
    assert torch.equal(first, second)


def test_augment_flip_mirrors_the_kept_pixels_on_the_device_and_changes_nothing_else(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    flipped = prepared(root / "train", tmp_path, "--augment", "flip")
    plain = prepared(root / "train", tmp_path, "--augment", "off")
    assert flipped.train_loader.dataset.flip_on_device and not plain.train_loader.dataset.flip_on_device
    assert torch.equal(flipped.train_loader.dataset[0][0], plain.train_loader.dataset[0][0])  # no crops, no colour
    assert flipped.train_loader.num_workers == 0  # nothing left for workers to do on the kept pixels
    assert not flipped.validation_loader.dataset.flip_on_device


def test_small_input_reaches_the_network(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    stride_of = {}
    for choice in ("on", "last", "off"):
        model = prepared(root / "train", tmp_path, "--small-input", choice).model
        stride_of[choice] = (model.layer2[0].conv1.stride, model.layer4[0].conv1.stride)
    assert stride_of == {"on": ((1, 1), (2, 2)), "last": ((2, 2), (1, 1)), "off": ((2, 2), (2, 2))}


def test_the_epoch_line_has_one_fixed_format():
    row = {"epoch": 3, "train_loss": 0.123456, "val_loss": 0.2, "mAP": 0.5, "micro_f1": 0.25, "macro_f1": 0.125,
           "tp": 1, "fp": 2, "fn": 3, "tn": 4, "seconds": 12.4, "saved": True}
    assert format_epoch_line(row, 10) == ("epoch  3/10 | train loss 0.1235 | val loss 0.2000 | mAP 0.500 | micro-F1 "
                                          "0.250 | macro-F1 0.125 | TP 1 FP 2 FN 3 TN 4 | 12 s | saved")
    bare = {"epoch": 1, "train_loss": 1.0, "seconds": 0.2, "saved": False}
    assert format_epoch_line(bare, 2) == "epoch 1/2 | train loss 1.0000 | 0 s"
