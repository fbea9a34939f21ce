"""train.py from start to finish: what a run writes and prints, how it treats bad input, early
stopping, resuming, head-only training, and Ctrl-C in each phase of a run."""

import contextlib
import csv
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_pages import page_data
from conftest import FAST_TRAINING, REPOSITORY, RunningScript, run_main, run_script, save_image, write_unreadable_files
from torchvision import models

import common.checkpoint
import train as train_script
from common.checkpoint import load_checkpoint, read_tag_list
from common.distributed import Processes
from common.errors import UserError
from common.files import atomic_write, run_lock
from common.folder_scan import scan_folder
from common.training_loop import finish, fit

EPOCH_LINE = re.compile(r"^epoch 1/2 \| train loss \d+\.\d{4} \| val loss \d+\.\d{4} \| mAP \d\.\d{3} \| "
                        r"micro-F1 \d\.\d{3} \| macro-F1 \d\.\d{3} \| TP \d+ FP \d+ FN \d+ TN \d+ \| \d+ s"
                        r"( \| saved)?$", re.MULTILINE)


def train(data, model, *flags, cwd, check=True):
    return run_main("train.py", "--data", data, "--model", model, *FAST_TRAINING, *flags, cwd=cwd, check=check)


def test_a_run_prints_one_line_per_epoch_and_writes_the_model_and_its_tags(trained):
    root, result = trained
    assert len(EPOCH_LINE.findall(result.stdout)) == 1 and "epoch 2/2 | train loss" in result.stdout
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    assert checkpoint["arch"] == "resnet18" and checkpoint["image_size"] == 32
    assert checkpoint["tags"] == sorted(checkpoint["tags"]) == read_tag_list(root / "models" / "tags.json")
    assert checkpoint["thresholds"] == [0.5] * len(checkpoint["tags"])
    assert {"mAP", "micro_f1", "tp", "fp", "fn", "tn", "epoch"} <= set(checkpoint["metrics"])
    assert checkpoint["settings"]["epochs"] == 2 and checkpoint["settings"]["weights"] == "none"


def test_a_run_leaves_its_reports_beside_the_model(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "out" / "tagger.pth"
    result = train(root / "train", model, "--epochs", "2", cwd=tmp_path)
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
    # the report page: the same run, its validation images and their thumbnails
    report = page_data((tmp_path / "out" / "tagger.report.html").read_text(encoding="utf-8"))
    assert report["tags"] == checkpoint["tags"] and [row["epoch"] for row in history] == ["1", "2"]
    assert sorted(report["names"]) == sorted(split["validation"])
    assert sorted(row["tag"] for row in report["table"]) == checkpoint["tags"]
    shown = {report["names"][row] for tag in report["worst"] for side in tag.values() for row, _ in side}
    assert all(report["thumbs"][name].startswith("data:image/jpeg") for name in shown)
    quick_look = page_data((tmp_path / "out" / "tagger.suspects.html").read_text(encoding="utf-8"))
    assert quick_look["kind"] == "review" and quick_look["items"]
    assert {image["name"] for image in quick_look["images"]} <= set(split["validation"])
    assert report["links"][0]["href"] == "tagger.suspects.html"
    assert "tagger.report.html" in result.stdout


def test_the_report_links_to_the_folders_audit_and_duplicates_pages_when_there_are_some(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    for page in ("train.suspects.html", "train.duplicates.html"):
        (root / page).write_text("<html></html>")
    train(root / "train", tmp_path / "m.pth", cwd=tmp_path)
    report = page_data((tmp_path / "m.report.html").read_text(encoding="utf-8"))
    links = [link["href"] for link in report["links"]]
    assert links[0] == "m.suspects.html" and len(links) == 3
    assert [(tmp_path / link).resolve() for link in links[1:]] == [root / "train.suspects.html",
                                                                   root / "train.duplicates.html"]


def test_without_a_validation_share_every_image_trains_and_the_last_epoch_is_kept(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    result = train(root / "train", model, "--val-fraction", "0", "--epochs", "2", cwd=tmp_path)
    split = json.loads((tmp_path / "m.split.json").read_text())
    assert split["validation"] == [] and len(split["train"]) == len(scan_folder(root / "train").images)
    assert "val loss" not in result.stdout and "epoch 2/2" in result.stdout
    checkpoint = load_checkpoint(model)
    assert checkpoint["epoch"] == 2 and "mAP" not in checkpoint["metrics"] and "calibration" not in checkpoint
    assert checkpoint["thresholds"] == [0.5] * len(checkpoint["tags"])
    assert "no validation set" in result.stdout
    assert not (tmp_path / "m.report.csv").exists() and (tmp_path / "m.curves.png").exists()
    report = page_data((tmp_path / "m.report.html").read_text(encoding="utf-8"))  # the curves alone
    assert report["table"] == report["names"] == report["links"] == []
    assert "<svg" in (tmp_path / "m.report.html").read_text(encoding="utf-8")


def test_subfolders_are_read_with_recursive_and_images_sharing_a_name_stay_apart(tmp_path):
    data = tmp_path / "data"
    for folder, colour, tag in (("cats", (220, 20, 20), "cat"), ("dogs", (20, 20, 220), "dog")):
        for number in range(8):
            save_image(data / folder / f"{number}.png", tuple(value + number for value in colour))
            (data / folder / f"{number}.png.txt").write_text(f"{tag}\n")
    flat = train(data, tmp_path / "flat.pth", cwd=tmp_path, check=False)
    assert flat.returncode == 2 and "found no images with tag files" in flat.stderr
    train(data, tmp_path / "m.pth", "--recursive", "--batch-size", "4", cwd=tmp_path)
    split = json.loads((tmp_path / "m.split.json").read_text())
    names = sorted(split["train"] + split["validation"])
    assert names == sorted(f"{folder}/{number}.png" for folder in ("cats", "dogs") for number in range(8))
    assert load_checkpoint(tmp_path / "m.pth")["tags"] == ["cat", "dog"]


def test_rare_tags_are_dropped_and_named(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    save_image(root / "train" / "oddity.png", (10, 200, 10))
    (root / "train" / "oddity.png.txt").write_text("green\nunicorn\n")
    result = train(root / "train", tmp_path / "m.pth", "--min-tag-count", "2", cwd=tmp_path)
    assert "dropped 1 tag(s) on fewer than 2 images: unicorn" in result.stdout
    assert "unicorn" not in load_checkpoint(tmp_path / "m.pth")["tags"]


def test_patience_stops_a_run_that_no_longer_improves(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    # a frozen backbone (so no BatchNorm statistics move) and a learning rate too small to matter: nothing
    # changes, so epoch 1 stays the best
    result = train(root / "train", tmp_path / "m.pth", "--epochs", "5", "--lr", "1e-30", "--freeze-backbone",
                   "--patience", "2", cwd=tmp_path)
    assert "epoch 3/5" in result.stdout and "epoch 4/5" not in result.stdout
    assert "stopping early" in result.stdout


def test_resume_without_an_interrupted_run_says_so(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    result = train(root / "train", tmp_path / "m.pth", "--resume", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "m.last.pth" in result.stderr and "without --resume" in result.stderr


@pytest.mark.parametrize("weights, precision, epochs", [("file", "bf16", 14),
                                                      ("file", "fp32", 10), ("none", "bf16", 10)])
def test_auto_epochs_are_14_only_when_pretrained_weights_train_in_half_precision(shapes_dataset, tmp_path, weights,
                                                                                precision, epochs):
    root, _ = shapes_dataset
    if weights == "file":
        weights = tmp_path / "backbone.pth"
        torch.save(models.resnet18().state_dict(), weights)
    args = train_script.get_args_parser().parse_settings(
        ["--data", str(root / "train"), "--model", str(tmp_path / "m.pth"), *FAST_TRAINING, "--epochs", "auto",
         "--weights", str(weights), "--precision", precision], use_environment=False)
    assert train_script.prepare_run(args).args.epochs == epochs


def test_a_frozen_backbone_stays_as_it_was_while_the_head_learns(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    torch.save(models.resnet18().state_dict(), tmp_path / "backbone.pth")
    flags = ["--weights", tmp_path / "backbone.pth", "--freeze-backbone", "--epochs", "4"]
    result = train(root / "train", tmp_path / "m.pth", *flags, cwd=tmp_path)
    assert "features: computed once" in result.stdout and "epoch 4/4" in result.stdout
    trained = load_checkpoint(tmp_path / "m.pth")["state_dict"]
    original = torch.load(tmp_path / "backbone.pth", weights_only=True)
    assert torch.equal(trained["layer3.0.conv1.weight"], original["layer3.0.conv1.weight"])
    assert torch.equal(trained["bn1.running_mean"], original["bn1.running_mean"])
    # The same run with a learning rate too small to move anything keeps the head it started with;
    # the real run's differs from that one, so its head moved because it learned, not because it
    # started elsewhere.
    train(root / "train", tmp_path / "still.pth", *flags, "--lr", "1e-30", "--val-fraction", "0", cwd=tmp_path)
    untrained = load_checkpoint(tmp_path / "still.pth")["state_dict"]
    assert torch.equal(untrained["layer3.0.conv1.weight"], original["layer3.0.conv1.weight"])
    assert (trained["fc.weight"] - untrained["fc.weight"]).abs().max() > 1e-3


def test_a_model_of_ours_is_a_starting_point_for_the_next(trained, tmp_path):
    root, _ = trained
    earlier = root / "models" / "m.pth"
    result = train(root / "shapes" / "train", tmp_path / "next.pth", "--weights", earlier, "--freeze-backbone",
                   cwd=tmp_path)
    assert f"weights: {earlier}" in result.stdout
    before, after = load_checkpoint(earlier)["state_dict"], load_checkpoint(tmp_path / "next.pth")["state_dict"]
    assert all(torch.equal(before[name], after[name]) for name in before if not name.startswith("fc."))


@pytest.mark.slow  # whole runs of a few seconds each: the fast tier keeps under 3 minutes
def test_index_cache_is_written_and_serves_the_next_run(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    index = tmp_path / "cache" / "train.index.json"
    flags = ["--index-cache", index, "--val-fraction", "0"]
    first = train(root / "train", tmp_path / "m.pth", *flags, cwd=tmp_path)
    assert f"index: {index}" in first.stdout
    listed = json.loads(index.read_text())["files"]
    assert len(listed) == len(list((root / "train").glob("*.txt")))
    written = index.stat().st_mtime_ns
    second = train(root / "train", tmp_path / "m.pth", *flags, cwd=tmp_path)
    assert second.stdout.split("data: ")[1].split(" (")[0] == first.stdout.split("data: ")[1].split(" (")[0]
    assert index.stat().st_mtime_ns == written  # nothing changed, so the index was only read


@pytest.mark.slow  # whole runs of a few seconds each: the fast tier keeps under 3 minutes
def test_the_small_input_layout_is_chosen_for_runs_from_scratch_with_fast_arithmetic_only(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    pretrained = tmp_path / "pretrained.pth"
    torch.save(models.resnet18(weights=None).state_dict(), pretrained)  # a plain torchvision state dict
    layouts = {}
    for name, flags in {"bf16": ["--precision", "bf16"], "fp32": ["--precision", "fp32"],
                        "pretrained": ["--precision", "bf16", "--weights", pretrained]}.items():
        model = tmp_path / f"{name}.pth"
        result = train(root / "train", model, *flags, "--val-fraction", "0", cwd=tmp_path)
        layouts[name] = load_checkpoint(model)["small_input"]
        assert ("adapted to small inputs" in result.stdout) == (layouts[name] is not None)
    assert layouts == {"bf16": "layer4", "fp32": None, "pretrained": None}


def test_training_on_a_hostile_folder_finishes_and_names_every_unreadable_file(hostile_training_folder, tmp_path):
    folder, valid, unreadable = hostile_training_folder
    result = train(folder, tmp_path / "m.pth", "--val-fraction", "0.2", cwd=tmp_path)
    for name in unreadable:
        assert name in result.stdout, f"{name} was not named"
    assert "untagged.png" in result.stdout and "orphan.jpg.txt" in result.stdout
    checkpoint = load_checkpoint(tmp_path / "m.pth")
    assert {"red", "round", "square", "rund", "grün"} <= set(checkpoint["tags"])  # cp1252 decoded
    for junk in (".DS_Store", "Thumbs.db", "._cmyk.jpg", ".hidden.png"):  # ignored quietly
        assert junk not in result.stdout + result.stderr


def test_unreadable_images_are_skipped_and_each_named_once(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    (root / "train" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "train" / "truncated.jpg.txt").write_text("red\n")
    save_image(root / "train" / "no_tags_yet.png")
    result = train(root / "train", tmp_path / "m.pth", "--epochs", "2", cwd=tmp_path)
    assert result.stdout.count("skipping unreadable image") == 1 and "truncated.jpg" in result.stdout
    assert "no_tags_yet.png" in result.stdout  # an image without a tag file is named too
    assert load_checkpoint(tmp_path / "m.pth")["epoch"] in (1, 2)


def test_a_folder_with_no_readable_image_is_a_clear_error_and_writes_no_model(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in write_unreadable_files(folder) + ["webp.webp", "gif.gif"]:
        if not (folder / name).exists():
            (folder / name).write_bytes(b"not an image at all")
        (folder / f"{name}.txt").write_text("red\n")
    result = train(folder, tmp_path / "m.pth", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "could be read" in result.stderr and str(folder) in result.stderr
    assert not (tmp_path / "m.pth").exists()


def test_an_output_folder_that_cannot_be_created_is_reported_before_any_work(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should be")
    for flags in (["--model", blocker / "m.pth"], ["--model", tmp_path / "m.pth", "--tags", blocker / "t.txt"]):
        result = run_main("train.py", "--data", root / "train", *FAST_TRAINING, *flags, cwd=tmp_path, check=False)
        assert result.returncode == 2 and "a_file" in result.stderr and "epoch" not in result.stdout
    assert blocker.read_text() == "a file where a folder should be"


def test_an_existing_model_is_backed_up_when_not_asked_to_replace_it(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    model.write_bytes(b"a model the user cares about")
    no_yes = [flag for flag in FAST_TRAINING if flag != "--yes"]
    result = run_main("train.py", "--data", root / "train", "--model", model, *no_yes, cwd=tmp_path)
    assert (tmp_path / "m.previous.pth").read_bytes() == b"a model the user cares about"
    assert "m.previous.pth" in result.stdout
    load_checkpoint(model)
    model.write_bytes(b"the next model")  # the copy is made while the model stays whole in place, so that a
    train_script.confirm_overwrite(model, False, Processes())  # run killed before its first save leaves it there
    assert model.read_bytes() == (tmp_path / "m.previous.pth").read_bytes() == b"the next model"


def test_a_second_run_writing_the_same_model_is_refused_in_one_line(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    killed = [tmp_path / ".m.pth.abcd1234.tmp", tmp_path / ".m.last.pth.k1ll3d_x.tmp"]  # what kill -9 left
    for path in killed:
        path.write_bytes(b"cut off mid-wr")
    with run_lock(tmp_path / ".m.pth.lock", "training", "wait"):  # as the first run holds it
        refused = train(root / "train", model, cwd=tmp_path, check=False)
        train(root / "train", tmp_path / "other.pth", cwd=tmp_path)  # another model in the same folder is fine
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        f"error: another run (process {os.getpid()}) is training {model}: wait for it to end (or stop it), or give "
        "this run another --model"]
    assert not model.exists() and not (tmp_path / "m.split.json").exists() and all(path.exists() for path in killed)
    finished = train(root / "train", model, cwd=tmp_path)
    assert "removed 2 unfinished temporary file(s) left by an interrupted run" in finished.stdout
    assert not any(path.exists() for path in killed) and not (tmp_path / ".m.pth.lock").exists()


def test_a_run_killed_between_its_final_save_and_its_clearing_up_is_finished_by_resume(shapes_dataset, tmp_path):
    """The state saved when the last epoch (here: patience) ends is left as kill -9 after the final save
    would leave it; --resume must clear up without training on or calibrating the calibrated model again."""
    root, _ = shapes_dataset
    model, state = tmp_path / "m.pth", tmp_path / "m.last.pth"
    args = train_script.get_args_parser().parse_settings(
        ["--data", str(root / "train"), "--model", str(model), *FAST_TRAINING, "--epochs", "5", "--lr", "1e-30",
         "--freeze-backbone", "--patience", "1"], use_environment=False)
    run = train_script.prepare_run(args)
    fit(run)
    assert run.epochs_done == 2 and state.exists()  # stopped early, its state saved for a kill in what follows
    interrupted_state = state.read_bytes()
    finish(run)
    finished = model.read_bytes()
    state.write_bytes(interrupted_state)
    resumed = run_main("train.py", "--resume", "--model", model, cwd=tmp_path)
    assert "stopping early" in resumed.stdout and "epoch 3/5" not in resumed.stdout
    assert "calibrated" not in resumed.stdout and model.read_bytes() == finished and not state.exists()


@pytest.mark.slow  # starts a script under a limit or a signal: in the slow tier
def test_ctrl_c_while_a_model_is_saved_lets_the_save_finish_then_stops(shapes_dataset, tmp_path, monkeypatch):
    """Ctrl-C arrives, on purpose, in the middle of writing the first epoch's model."""
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"

    @contextlib.contextmanager
    def write_interrupted_midway(path, mode="w", **options):
        with atomic_write(path, mode, **options) as file:
            if path == model:
                original_write = file.write

                def write(data):
                    signal.raise_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
                    return original_write(data)

                file.write = write
            yield file

    monkeypatch.setattr(common.checkpoint, "atomic_write", write_interrupted_midway)
    result = train(root / "train", model, "--epochs", "3", cwd=tmp_path, check=False)
    assert result.returncode == 130, result.stderr
    assert "interrupted: the best model (epoch 1)" in result.stdout and "--resume" in result.stdout
    monkeypatch.undo()
    assert load_checkpoint(model)["epoch"] == 1  # written whole, although Ctrl-C came in the middle
    assert (tmp_path / "m.last.pth").exists()
    resumed = train(root / "train", model, "--epochs", "3", "--resume", cwd=tmp_path)
    assert "resuming after epoch 1" in resumed.stdout and "epoch 3/3" in resumed.stdout


def test_debug_shows_the_traceback_that_a_user_error_otherwise_hides(tmp_path):
    quiet = run_main("train.py", "--data", tmp_path / "nowhere", "--model", "m.pth", cwd=tmp_path, check=False)
    assert quiet.returncode == 2 and quiet.stderr.startswith("error: ") and "nowhere does not exist" in quiet.stderr
    with pytest.raises(UserError, match="nowhere does not exist"):
        run_main("train.py", "--data", tmp_path / "nowhere", "--model", "m.pth", "--debug", cwd=tmp_path)


def test_a_run_as_a_user_starts_it(shapes_dataset, tmp_path):
    """The smoke test: train.py in a new process, as typed in a terminal."""
    root, _ = shapes_dataset
    result = run_script("train.py", "--data", root / "train", "--model", tmp_path / "m.pth", *FAST_TRAINING,
                        "--workers", "1", cwd=tmp_path)
    assert "epoch 1/1 | train loss" in result.stdout and load_checkpoint(tmp_path / "m.pth")["epoch"] == 1
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_learns_in_a_fresh_folder(tmp_path):
    """The README's first command: no .env, no internet, and validation micro-F1 of at least 0.9."""
    result = run_script("train.py", "--demo", cwd=tmp_path)
    micro_f1 = float(re.search(r"validation micro-F1 is (\d\.\d+)", result.stdout).group(1))
    assert micro_f1 >= 0.9, result.stdout
    assert (tmp_path / "demo" / "model.pth").exists() and (tmp_path / "demo" / "model.tags.txt").exists()
    assert len(list((tmp_path / "demo" / "infer").glob("*.png.txt"))) == 12
    summary = result.stdout.split("validation micro-F1 is")[1]
    for written in ("demo/model.pth", "demo/train/", "demo/infer/", "demo/model.tags.txt"):
        assert written in summary
    assert "python train.py --data YOUR_FOLDER --model models/tagger.pth" in summary
    assert "python infer.py --input FOLDER_TO_TAG --model models/tagger.pth" in summary
    assert "cp .env.example .env" in summary
    for line in result.stdout.split("both in alphabetical order):")[1].splitlines()[1:7]:
        predicted, true = line.split(": ", 1)[1].split(" | ")
        assert true.split(", ") == sorted(true.split(", ")) and predicted.split(", ") == sorted(predicted.split(", "))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("delay", [0.2, 0.5, 0.9, 1.4])
def test_ctrl_c_while_loading_writes_nothing_and_says_so(shapes_dataset, tmp_path, delay):
    """The libraries take seconds to import: each Ctrl-C here comes while they load, at a different
    point of it (a KeyboardInterrupt in the middle of an import once left numpy half-loaded)."""
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    model.write_bytes(b"the previous model")
    running = RunningScript("train.py", "--data", root / "train", "--model", model, *FAST_TRAINING, cwd=tmp_path)
    time.sleep(delay)
    running.interrupt()
    returncode = running.finish()
    assert "device:" not in running.stdout, "the run got past loading before the Ctrl-C"
    assert returncode == 130, running.stderr
    assert running.stderr.strip() == "interrupted (Ctrl-C) while starting; nothing was written"
    assert model.read_bytes() == b"the previous model" and not (tmp_path / "m.split.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_during_the_epochs_keeps_the_best_model_and_resume_finishes_the_run(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    flags = ["--data", root / "train", "--model", model, *FAST_TRAINING, "--epochs", "3"]
    running = RunningScript("train.py", *flags, cwd=tmp_path)
    running.wait_for("epoch 1/3")
    running.interrupt()  # during epoch 2
    assert running.finish() == 130, running.stdout + running.stderr
    assert "the best model (epoch 1)" in running.stdout and "--resume" in running.stdout
    assert "Traceback" not in running.stderr
    assert load_checkpoint(model)["epoch"] == 1  # complete and loadable
    assert (tmp_path / "m.last.pth").exists()

    resumed = run_script("train.py", *flags, "--resume", cwd=tmp_path)
    assert "resuming after epoch 1" in resumed.stdout
    assert "epoch 1/3" not in resumed.stdout and "epoch 3/3" in resumed.stdout
    assert load_checkpoint(model)["settings"]["epochs"] == 3
    assert not (tmp_path / "m.last.pth").exists()


def terminal_test(test):
    """A slow test on a pseudo-terminal (POSIX only)."""
    for mark in (pytest.mark.slow, pytest.mark.timeout(300),
                 pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX only")):
        test = mark(test)
    return test


def run_in_a_terminal(data, model, cwd, react):
    """Run train.py over an existing model, without --yes, on a pseudo-terminal, which makes it believe
    a person is watching; react(process, output) is called as output arrives, until it returns True.
    Returns (exit status, output)."""
    import pty

    flags = ["--data", data, "--model", model, *[flag for flag in FAST_TRAINING if flag != "--yes"]]
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, str(REPOSITORY / "train.py"), *map(str, flags)], cwd=cwd,
                               stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output, done, deadline = b"", False, time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if select.select([leader], [], [], 1)[0]:
            with contextlib.suppress(OSError):
                output += os.read(leader, 4096)
        if not done:
            done = react(process, output)
    returncode = process.wait(timeout=60)
    with contextlib.suppress(OSError):
        while select.select([leader], [], [], 0.5)[0]:
            output += os.read(leader, 4096)
    os.close(leader)
    return returncode, output.decode(errors="replace")


@terminal_test
def test_in_a_terminal_ctrl_c_during_the_countdown_keeps_the_model(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    model.write_bytes(b"precious")

    def press_ctrl_c(process, output):
        if b"will be replaced in" in output:
            process.send_signal(signal.SIGINT)
            return True
        return False

    returncode, output = run_in_a_terminal(root / "train", model, tmp_path, press_ctrl_c)
    assert returncode == 130 and "left as it was" in output, output
    assert model.read_bytes() == b"precious"


@terminal_test
def test_in_a_terminal_a_countdown_left_to_run_out_replaces_the_model(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    model.write_bytes(b"an older model")
    returncode, output = run_in_a_terminal(root / "train", model, tmp_path, lambda process, output: False)
    assert returncode == 0, output
    for remaining in (5, 4, 3, 2, 1):
        assert f"replaced in {remaining} s" in output
    assert load_checkpoint(model)["epoch"] == 1 and not (tmp_path / "m.previous.pth").exists()
