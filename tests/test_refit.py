"""The last epochs of a run: the held-out images, once they have chosen the thresholds, train too
(--refit-epochs), so that the model users get has learned from every image."""

import csv
import re

import numpy as np
import pytest
import torch
from conftest import FAST_TRAINING, assert_same_model, interrupted_run, run_main

import common.training_loop
import train as train_script
from common.checkpoint import load_checkpoint
from common.folder_scan import scan_folder
from common.loaders import make_loaders
from common.distributed import Processes
from common.training_loop import fit

REFIT_LINE = re.compile(r"^epoch 2/2 \| train loss \d+\.\d{4} \| held-out images train too, no validation \| \d+ s"
                        r" \| saved$", re.MULTILINE)


def train(data, model, *flags, cwd, check=True):
    return run_main("train.py", "--data", data, "--model", model, *FAST_TRAINING, *flags, cwd=cwd, check=check)


def test_the_held_out_images_train_in_the_last_epochs_once_they_chose_the_thresholds(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    # one validated epoch, the best so far by definition: then the held-out images train
    result = train(root / "train", model, "--epochs", "2", "--refit-epochs", "1", cwd=tmp_path)
    assert "epoch 2: the" in result.stdout and "held-out images train too" in result.stdout
    assert len(REFIT_LINE.findall(result.stdout)) == 1, result.stdout
    checkpoint = load_checkpoint(model)
    assert checkpoint["epoch"] == 2 and checkpoint["metrics"]["validated_epoch"] == 1
    refit = checkpoint["calibration"]["refit"]
    assert refit["from_epoch"] == 1 and set(refit["alternatives"]) == set(common.training_loop.REFIT_DESCRIPTIONS)
    assert all(len(values) == len(checkpoint["tags"]) for values in refit["alternatives"].values())
    assert refit["mean_logit_shift"] >= 0
    assert checkpoint["calibration"]["thresholds"] == refit["alternatives"][refit["chosen"]]
    # the report shows the held-out images while unseen, at the thresholds chosen on them then
    with open(tmp_path / "m.report.csv", newline="") as file:
        shown = {row["tag"]: float(row["threshold"]) for row in csv.DictReader(file)}
    assert np.allclose([shown[tag] for tag in checkpoint["tags"]], refit["alternatives"]["carried"], atol=1e-3)
    with open(tmp_path / "m.metrics.csv", newline="") as file:
        history = list(csv.DictReader(file))
    assert [row["epoch"] for row in history] == ["1", "2"]
    assert history[0]["mAP"] and not history[1]["mAP"] and history[1]["refit"] == "True"
    assert "whose validation this is" in result.stdout
    # the audit's quick look judges a model's validation images, which this one has learned from
    refused = run_main("prepare.py", "audit", root / "train", "--from-model", model, "--workers", "0", cwd=tmp_path,
                       check=False)
    assert refused.returncode == 2 and "trained on its validation images too" in refused.stderr


def run_with_an_earlier_best(root, model, lead):
    """Three epochs, the last on every image if it hands over: epochs 1 and 2 trained and validated,
    then, as if epoch 1 had validated better than epoch 2 by `lead` mAP, the rest of fit()."""
    args = train_script.get_args_parser().parse_settings(
        ["--data", str(root / "train"), "--model", str(model), *FAST_TRAINING, "--epochs", "3", "--refit-epochs", "1"],
        use_environment=False)
    run = train_script.prepare_run(args)
    for epoch in (1, 2):
        run.history.append(common.training_loop.run_epoch(run, epoch))
        run.epochs_done = epoch
    run.best = {key: value for key, value in run.history[0].items() if key not in ("saved", "lr")}
    run.best["mAP"] = run.history[1]["mAP"] + lead
    fit(run)
    return run


def test_when_validation_peaked_before_the_last_epochs_the_held_out_images_keep_validating(shapes_dataset, tmp_path,
                                                                                          capsys):
    root, _ = shapes_dataset
    run = run_with_an_earlier_best(root, tmp_path / "m.pth", lead=2 * common.training_loop.REFIT_TOLERANCE)
    output = capsys.readouterr().out
    assert "keep validating to the end: validation mAP peaked at epoch 1" in output
    assert "held-out images train too" not in output and "mAP" in run.history[2] and not run.refit["active"]


def test_a_last_validated_epoch_within_the_tolerance_of_an_earlier_best_hands_over(shapes_dataset, tmp_path, capsys):
    root, _ = shapes_dataset
    run = run_with_an_earlier_best(root, tmp_path / "m.pth", lead=common.training_loop.REFIT_TOLERANCE / 2)
    assert "epoch 3: the" in capsys.readouterr().out and run.refit["active"] and run.refit["epoch"] == 2


def test_refit_epochs_must_leave_an_epoch_to_validate_and_is_checked_before_any_data_is_read(tmp_path):
    result = run_main("train.py", "--data", tmp_path, "--model", tmp_path / "m.pth", *FAST_TRAINING, "--epochs", "3",
                      "--refit-epochs", "3", cwd=tmp_path, check=False)
    assert result.returncode != 0 and "--refit-epochs 3" in result.stderr + result.stdout
    assert "fewer than --epochs" in result.stderr + result.stdout and not (tmp_path / "m.pth").exists()
    result = run_main("train.py", "--data", tmp_path, "--model", tmp_path / "m.pth", "--refit-epochs", "some",
                      cwd=tmp_path, check=False)
    assert result.returncode == 2 and "--refit-epochs" in result.stderr and "auto or a whole number" in result.stderr


@pytest.mark.parametrize("epochs, expected", [(10, 3), (12, 3), (4, 1), (3, 0), (1, 0)])
def test_auto_refits_the_last_thirty_percent_of_the_epochs_and_never_without_held_out_images(epochs, expected):
    args = train_script.get_args_parser().parse_settings(["--epochs", str(epochs)], use_environment=False)
    assert common.training_loop.refit_epoch_count(args) == expected
    args.val_fraction = 0
    assert common.training_loop.refit_epoch_count(args) == 0
    args.val_fraction, args.freeze_backbone = 0.1, True
    assert common.training_loop.refit_epoch_count(args) == 0


def test_the_refit_loader_serves_the_training_and_held_out_images_from_one_decoding(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    args = train_script.get_args_parser().parse_settings(
        ["--data", str(root / "train"), "--model", str(tmp_path / "m.pth"), *FAST_TRAINING], use_environment=False)
    paths = scan_folder(root / "train").images
    targets = torch.zeros((len(paths), 2))
    split = (list(range(0, len(paths), 2)), list(range(1, len(paths), 2)))
    train_loader, validation_loader, refit_loader = make_loaders(
        args, paths, targets, split, torch.device("cpu"), "off", Processes(), with_refit=True)
    served = sorted(str(path) for path in refit_loader.dataset.paths)
    assert served == sorted(map(str, paths))
    # the three parts share the kept pixels: the parts are views of one decoding
    pixels = refit_loader.dataset.pixels
    assert train_loader.dataset.pixels.data_ptr() == pixels.data_ptr()
    assert validation_loader.dataset.pixels.data_ptr() == pixels[len(split[0])].data_ptr()
    assert torch.equal(validation_loader.dataset.pixels, pixels[len(split[0]):])
    assert make_loaders(args, paths, targets, (split[0], []), torch.device("cpu"), "off", Processes(),
                        with_refit=True)[2] is None


def test_a_run_interrupted_while_the_held_out_images_train_is_finished_by_resume(shapes_dataset, tmp_path,
                                                                                monkeypatch):
    root, _ = shapes_dataset
    flags = ["--data", str(root / "train"), *FAST_TRAINING, "--epochs", "3", "--refit-epochs", "2"]
    whole = tmp_path / "whole.pth"
    run_main("train.py", *flags, "--model", whole, cwd=tmp_path)

    model = tmp_path / "m.pth"
    run = interrupted_run(flags, model, monkeypatch, at_epoch=3)  # in the second refit epoch
    assert run.epochs_done == 2 and run.refit["active"]
    resumed = run_main("train.py", "--resume", "--model", model, cwd=tmp_path)
    assert "resuming after epoch 2" in resumed.stdout and "epoch 3/3" in resumed.stdout
    assert load_checkpoint(model)["epoch"] == 3
    assert_same_model(load_checkpoint(model), load_checkpoint(whole))
