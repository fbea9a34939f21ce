"""train.py's behaviour over a whole run: reports, calibration, rare tags, early stopping,
resuming after Ctrl-C, and head-only training on cached features."""

import csv
import json
import signal
import subprocess
import sys

import torch
from torchvision import models

from common.checkpoint import load_checkpoint
from common.dataset import scan_folder
from common.model import build_model
from conftest import FAST_TRAINING, REPOSITORY, run_script, save_image


def test_a_run_leaves_its_reports_beside_the_model(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "out" / "tagger.pth"
    result = run_script("train.py", "--data", root / "train", "--model", model, *FAST_TRAINING, "--epochs", "2",
                        cwd=tmp_path)
    with open(tmp_path / "out" / "tagger.metrics.csv", newline="") as file:
        history = list(csv.DictReader(file))
    assert [row["epoch"] for row in history] == ["1", "2"]
    assert {"train_loss", "val_loss", "mAP", "micro_f1", "macro_f1", "tp", "fp", "fn", "tn"} <= set(history[0])
    checkpoint = load_checkpoint(model)
    with open(tmp_path / "out" / "tagger.report.csv", newline="") as file:
        report = list(csv.DictReader(file))
    assert sorted(row["tag"] for row in report) == checkpoint["tags"]
    for picture in ("tagger.curves.png", "tagger.pr.png"):
        assert (tmp_path / "out" / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    split = json.loads((tmp_path / "out" / "tagger.split.json").read_text())
    images = sorted(path.name for path in scan_folder(root / "train").images)
    assert sorted(split["train"] + split["validation"]) == images and not set(split["train"]) & set(split["validation"])
    assert not (tmp_path / "out" / "tagger.last.pth").exists()  # the run finished: nothing to resume
    assert (tmp_path / "out" / "tagger.tags.txt").read_text().split() == checkpoint["tags"]
    calibrated = checkpoint["calibration"]["thresholds"]
    assert len(calibrated) == len(checkpoint["tags"]) and all(0 < t < 1 for t in calibrated)
    assert checkpoint["thresholds"] == [0.5] * len(checkpoint["tags"])  # folded into the head
    assert "micro_f1_at_0.5" in checkpoint["metrics"] and "calibrated per-tag thresholds" in result.stdout
    assert "per-tag report, worst first" in result.stdout


def test_rare_tags_are_dropped_and_named(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    save_image(root / "train" / "oddity.png", (10, 200, 10))
    (root / "train" / "oddity.png.txt").write_text("green\nunicorn\n")
    result = run_script("train.py", "--data", root / "train", "--model", tmp_path / "m.pth", *FAST_TRAINING,
                        "--min-tag-count", "2", cwd=tmp_path)
    assert "dropped 1 tag(s) on fewer than 2 images: unicorn" in result.stdout
    assert "unicorn" not in load_checkpoint(tmp_path / "m.pth")["tags"]


def test_patience_stops_a_run_that_no_longer_improves(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    # a frozen backbone (so no BatchNorm statistics move) and a learning rate of zero: nothing changes,
    # so epoch 1 stays the best
    result = run_script("train.py", "--data", root / "train", "--model", tmp_path / "m.pth", *FAST_TRAINING,
                        "--epochs", "5", "--lr", "0", "--freeze-backbone", "--patience", "2", cwd=tmp_path)
    assert "epoch 3/5" in result.stdout and "epoch 4/5" not in result.stdout
    assert "stopping early" in result.stdout


def test_ctrl_c_keeps_the_best_model_and_resume_finishes_the_run(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    flags = ["--data", str(root / "train"), "--model", str(model), *FAST_TRAINING, "--epochs", "3"]
    process = subprocess.Popen([sys.executable, str(REPOSITORY / "train.py"), *flags], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    output = ""
    for line in process.stdout:
        output += line
        if line.startswith("epoch 1/3"):
            process.send_signal(signal.SIGINT)  # as Ctrl-C does, during epoch 2
            break
    output += process.stdout.read()
    assert process.wait(timeout=120) == 130, output
    assert "--resume" in output and "the best model (epoch 1)" in output
    assert load_checkpoint(model)["epoch"] == 1  # complete and loadable
    assert (tmp_path / "m.last.pth").exists()

    resumed = run_script("train.py", *flags, "--resume", cwd=tmp_path)
    assert "resuming after epoch 1" in resumed.stdout
    assert "epoch 1/3" not in resumed.stdout and "epoch 3/3" in resumed.stdout
    assert load_checkpoint(model)["settings"]["epochs"] == 3
    assert not (tmp_path / "m.last.pth").exists()


def test_resume_without_an_interrupted_run_says_so(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    result = run_script("train.py", "--data", root / "train", "--model", tmp_path / "m.pth", *FAST_TRAINING,
                        "--resume", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "m.last.pth" in result.stderr and "without --resume" in result.stderr


def test_frozen_backbone_trains_only_the_head(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    torch.save(models.resnet18().state_dict(), tmp_path / "backbone.pth")
    result = run_script("train.py", "--data", root / "train", "--model", tmp_path / "m.pth", *FAST_TRAINING,
                        "--weights", tmp_path / "backbone.pth", "--freeze-backbone", "--epochs", "4", cwd=tmp_path)
    assert "features: computed once" in result.stdout and "epoch 4/4" in result.stdout
    trained = load_checkpoint(tmp_path / "m.pth")["state_dict"]
    original = torch.load(tmp_path / "backbone.pth", weights_only=True)
    assert torch.equal(trained["layer3.0.conv1.weight"], original["layer3.0.conv1.weight"])
    assert torch.equal(trained["bn1.running_mean"], original["bn1.running_mean"])
    torch.manual_seed(0)  # train.py's --seed: the same freshly initialised head
    initial_head = build_model("resnet18", trained["fc.weight"].shape[0], str(tmp_path / "backbone.pth")).fc
    assert not torch.equal(trained["fc.weight"], initial_head.weight)  # while the head did learn


def test_augmentation_is_off_unless_asked_for_and_never_on_cached_features():
    import train

    def augments(*flags):
        return train.augments(train.get_args_parser().parse_settings(list(flags), use_environment=False))

    assert not augments("--weights", "imagenet") and not augments("--weights", "none")
    assert augments("--weights", "none", "--augment", "on")
    assert augments("--weights", "some/file.pth", "--augment", "on")
    assert not augments("--weights", "imagenet", "--augment", "on", "--no-augment")  # the later flag wins
    assert not augments("--weights", "imagenet", "--augment", "on", "--freeze-backbone")  # features are computed once


def test_index_cache_is_written_and_serves_the_next_run(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    index = tmp_path / "cache" / "train.index.json"
    flags = ["--data", root / "train", "--model", tmp_path / "m.pth", *FAST_TRAINING, "--index-cache", index]
    first = run_script("train.py", *flags, cwd=tmp_path)
    assert f"index: {index}" in first.stdout
    listed = json.loads(index.read_text())["files"]
    assert len(listed) == len(list((root / "train").glob("*.txt")))
    written = index.stat().st_mtime_ns
    second = run_script("train.py", *flags, cwd=tmp_path)
    assert second.stdout.split("data: ")[1].split(" (")[0] == first.stdout.split("data: ")[1].split(" (")[0]
    assert index.stat().st_mtime_ns == written  # nothing changed, so the index was only read


def test_the_small_input_layout_is_chosen_for_runs_from_scratch_with_fast_arithmetic_only(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    pretrained = tmp_path / "pretrained.pth"
    torch.save(models.resnet18(weights=None).state_dict(), pretrained)  # a plain torchvision state dict
    layouts = {}
    for name, flags in {"bf16": ["--precision", "bf16"], "fp32": ["--precision", "fp32"],
                        "pretrained": ["--precision", "bf16", "--weights", pretrained]}.items():
        model = tmp_path / f"{name}.pth"
        result = run_script("train.py", "--data", root / "train", "--model", model, *FAST_TRAINING, *flags,
                            cwd=tmp_path)
        layouts[name] = load_checkpoint(model)["small_input"]
        assert ("adapted to small inputs" in result.stdout) == (layouts[name] is not None)
    assert layouts == {"bf16": "layer4", "fp32": None, "pretrained": None}
