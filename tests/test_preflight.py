"""Every mistake in a training run's settings is caught before any data is read or anything is
written, in one line that names the setting; and --resume needs nothing but the model's path."""

import contextlib
import re
import signal

import pytest
import torch
from conftest import FAST_TRAINING, run_main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import common.checkpoint
import infer
import train
from common.checkpoint import load_checkpoint
from common.files import atomic_write
from common.settings import ENVIRONMENT_KEYS

BAD_SETTINGS = [
    (["--arch", "resnet5"], "unknown --arch 'resnet5': did you mean resnet50"),
    (["--batch-size", "0"], "--batch-size: must be at least 1, not 0"),
    (["--batch-size", "-3"], "--batch-size: must be at least 1, not -3"),
    (["--workers", "-1"], "--workers: must be at least 0, not -1"),
    (["--epochs", "0"], "--epochs: must be at least 1, not 0"),
    (["--epochs", "ten"], "--epochs: 'ten' is not a whole number"),
    (["--image-size", "0"], "--image-size: must be at least 32, not 0"),
    (["--image-size", "7"], "--image-size: must be at least 32, not 7"),
    (["--arch", "vit_b_16", "--image-size", "64"], "--image-size 64 does not suit --arch vit_b_16"),
    (["--lr", "0"], "--lr: must be above 0, not 0"),
    (["--lr", "nan"], "--lr: must be above 0, not nan"),
    (["--val-fraction", "1"], "--val-fraction: must be at least 0 and below 1, not 1"),
    (["--warmup", "1.5"], "--warmup: must be at least 0 and at most 1, not 1.5"),
    (["--weight-decay", "-0.1"], "--weight-decay: must be at least 0"),
    (["--min-tag-count", "0"], "--min-tag-count: must be at least 1"),
    (["--loss", "focal"], "--loss: invalid choice: 'focal'"),
    (["--weights", "nosuch.pth"], "--weights nosuch.pth: no such file"),
    (["--weights", "notes.txt"], "holds text, not a PyTorch model"),
    (["--data", "nosuch/"], "--data nosuch does not exist"),
    (["--model", "blocker/m.pth"], "blocker is a file, not a folder"),
    (["--tag-list", "blocker/t.txt"], "cannot write the tag list"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--model", "a_folder"], "a_folder is a folder, but the model is a file"),
    (["--tag-list", "a_folder"], "a_folder is a folder, but the tag list is a file"),
    (["--index-cache", "a_folder"], "a_folder is a folder, but the --index-cache file is a file"),
    (["--small-input", "on", "--arch", "efficientnet_b0"], "--small-input on is for ResNet-family networks"),
    (["--image-size", "99999"], "--image-size: must be at most 4096"),
    (["--precision", "fp16", "--device", "cpu"], "fp16 is for GPUs"),
]


@pytest.fixture
def workspace(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    (tmp_path / "notes.txt").write_text("some notes, not weights\n")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    (tmp_path / "a_folder").mkdir()
    return root / "train"


def everything_in(folder):
    return sorted(path.relative_to(folder) for path in folder.rglob("*"))


@pytest.mark.parametrize("flags, message", BAD_SETTINGS, ids=[" ".join(flags) for flags, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_before_any_data_is_read_or_anything_written(workspace, tmp_path, flags, message):
    before = everything_in(tmp_path)
    result = run_main("train.py", "--data", workspace, "--model", tmp_path / "models" / "m.pth", *FAST_TRAINING,
                      *flags, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "data:" not in result.stdout  # the folder was never scanned
    assert everything_in(tmp_path) == before  # not even the models/ folder was made


def test_imagenet_weights_that_cannot_be_had_are_reported_before_the_data_is_read(workspace, tmp_path, monkeypatch):
    from torchvision import models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]).write_bytes(b"a broken partial download")
    flags = list(FAST_TRAINING)
    flags[flags.index("--weights") + 1] = "imagenet"
    result = run_main("train.py", "--data", workspace, "--model", tmp_path / "m.pth", *flags, cwd=tmp_path,
                      check=False)
    assert result.returncode == 2 and "could not get the ImageNet weights for resnet18" in result.stderr
    assert "--weights none" in result.stderr and "data:" not in result.stdout


def parsers():
    return {"train.py": train.get_args_parser, "infer.py": infer.get_args_parser}


def typed_flags():
    """(script, flag) for every flag of train.py and infer.py that takes a number or a choice."""
    for script, make in parsers().items():
        for action in make()._actions:
            if action.option_strings and (action.type not in (None, str.lower) or action.choices):
                yield script, action.option_strings[0]


@pytest.mark.parametrize("script, flag", list(typed_flags()))
@pytest.mark.parametrize("value", ["-5", "abc", "1e999", ""])
def test_no_value_of_any_flag_gives_a_traceback(script, flag, value, tmp_path):
    result = run_main(script, f"{flag}={value}", cwd=tmp_path, check=False)
    if flag == "--backbone-lr" or value != "-5" or "seed" not in flag:
        assert result.returncode == 2, (flag, value, result.stdout, result.stderr)
        assert result.stderr.startswith("error: ") and flag in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("key", sorted(set(ENVIRONMENT_KEYS.values())))
def test_no_value_of_any_env_key_gives_a_traceback(key, tmp_path):
    (tmp_path / ".env").write_text(f"{key}=-5x\n")
    for script in ("train.py", "infer.py"):
        result = run_main(script, cwd=tmp_path, check=False)
        assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from([flag for _, flag in typed_flags()]), text=st.text(max_size=12))
def test_any_text_for_any_setting_is_taken_or_refused_in_one_line(flag, text, tmp_path):
    for make in parsers().values():
        parser = make()
        if flag not in parser._option_string_actions:
            continue
        with contextlib.redirect_stderr(__import__("io").StringIO()) as errors:
            try:
                parser.parse_settings([f"{flag}={text}"], use_environment=False)
            except SystemExit as exit_:
                assert exit_.code == 2
                assert errors.getvalue().startswith("error: ") and errors.getvalue().count("\n") == 1


def test_prepare_refuses_bad_values_in_one_line(tmp_path):
    for argv, message in ((["check", tmp_path, "--min-tag-count", "0"], "--min-count: must be at least 1"),
                          (["frobnicate"], "invalid choice: 'frobnicate'"),
                          (["check", tmp_path], "found no images in"),
                          (["tag", tmp_path, "--add", " , "], "--add holds no tags")):
        result = run_main("prepare.py", *argv, cwd=tmp_path, check=False)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


# ----------------------------------------------------------------------------- resume
@pytest.fixture
def interrupted(shapes_dataset, tmp_path, monkeypatch):
    """A run of 3 epochs stopped by Ctrl-C while it saved its second epoch's model: resumable after 2."""
    root, _ = shapes_dataset
    model = tmp_path / "models" / "m.pth"
    saves = []

    @contextlib.contextmanager
    def interrupted_on_the_second_save(path, mode="w", **options):
        with atomic_write(path, mode, **options) as file:
            if path == model:
                saves.append(path)
                if len(saves) == 2:
                    signal.raise_signal(signal.SIGINT)
            yield file

    monkeypatch.setattr(common.checkpoint, "atomic_write", interrupted_on_the_second_save)
    # every epoch is the best so far, so each one saves the model
    result = run_main("train.py", "--data", root / "train", "--model", model, *FAST_TRAINING, "--epochs", "3",
                      "--val-fraction", "0", cwd=tmp_path, check=False)
    monkeypatch.undo()
    assert result.returncode == 130 and "interrupted: the best model (epoch 2)" in result.stdout, result.stdout
    return model


def test_resume_needs_only_the_model_and_continues_with_the_runs_own_settings(interrupted, tmp_path):
    result = run_main("train.py", "--resume", "--model", interrupted, cwd=tmp_path)
    assert re.search(r"resuming .*m\.pth: 2 of 3 epochs done \| data: .*shapes/train \| resnet18 at 32 px, "
                     r"weights: none \| batch 8", result.stdout), result.stdout
    assert "epoch 3/3" in result.stdout and "epoch 2/3" not in result.stdout
    checkpoint = load_checkpoint(interrupted)
    assert (checkpoint["arch"], checkpoint["image_size"], checkpoint["settings"]["epochs"]) == ("resnet18", 32, 3)
    again = run_main("train.py", "--resume", "--model", interrupted, cwd=tmp_path, check=False)
    assert again.returncode == 2 and "is complete (3 of 3 epochs" in again.stderr and "--weights" in again.stderr


def test_resume_may_raise_the_epochs_but_not_below_those_done(interrupted, tmp_path):
    fewer = run_main("train.py", "--resume", "--model", interrupted, "--epochs", "1", cwd=tmp_path, check=False)
    assert fewer.returncode == 2 and "--epochs 1 is fewer than the 2 epochs" in fewer.stderr
    more = run_main("train.py", "--resume", "--model", interrupted, "--epochs", "4", cwd=tmp_path)
    assert "2 of 4 epochs done" in more.stdout and "epoch 4/4" in more.stdout


def test_resume_with_epochs_auto_finishes_the_epochs_the_run_began_with(interrupted, tmp_path):
    resumed = run_main("train.py", "--resume", "--model", interrupted, "--epochs", "auto", cwd=tmp_path)
    assert "2 of 3 epochs done" in resumed.stdout and "epoch 3/3" in resumed.stdout


def test_resume_refuses_a_setting_that_cannot_change_mid_run(interrupted, tmp_path):
    for flags, message in ((["--arch", "resnet34"], "--arch resnet34 differs from the interrupted run's resnet18"),
                           (["--image-size", "64"], "--image-size 64 differs from the interrupted run's 32")):
        result = run_main("train.py", "--resume", "--model", interrupted, *flags, cwd=tmp_path, check=False)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    (tmp_path / ".env").write_text("ARCH=resnet50\nEPOCHS=10\n")  # .env describes new runs: the saved run wins
    resumed = run_main("train.py", "--resume", "--model", interrupted, cwd=tmp_path)
    assert "2 of 3 epochs done" in resumed.stdout and load_checkpoint(interrupted)["arch"] == "resnet18"


@pytest.mark.parametrize("line", ["EPOCHS 10", "epochs: 10", "--epochs=10"])
def test_a_line_of_env_file_that_is_not_a_setting_is_named(line, tmp_path):
    (tmp_path / ".env").write_text(f"ARCH=resnet18\n{line}\n")
    result = run_main("train.py", cwd=tmp_path, check=False)
    assert result.returncode == 2 and f"line 2 of .env is not KEY=value: {line!r}" in result.stderr


def test_inference_mistakes_are_named_before_any_image_is_read(trained, tmp_path):
    root, _ = trained
    model, folder = root / "models" / "m.pth", root / "shapes" / "infer"
    (tmp_path / "a_folder").mkdir()
    state = tmp_path / "m.last.pth"
    torch.save({"format": "multitag-trainer-resume", "epochs_done": 1}, state)
    for flags, message in ((["--model", tmp_path / "a_folder"], "is a folder, not a file"),
                           (["--model", model, "--csv", tmp_path / "a_folder"], "a_folder is a folder, but the output"),
                           (["--model", state], "is the state an interrupted training run keeps for --resume"),
                           (["--model", model, "--evaluate", "--merge"], "not allowed with argument"),
                           (["--model", model, "--threshold", "2"], "--threshold: must be at least 0 and at most 1")):
        result = run_main("infer.py", "--input", folder, *flags, cwd=tmp_path, check=False)
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not list(folder.glob("*.txt"))
    destination = tmp_path / "a_file"
    destination.write_text("x")
    moved = run_main("prepare.py", "folders", folder, destination, cwd=tmp_path, check=False)
    assert moved.returncode == 2 and "is a file, not a folder" in moved.stderr


def text_flags():
    """(script, flag) for every flag of train.py and infer.py that takes free text, such as a path."""
    for script, make in parsers().items():
        for action in make()._actions:
            takes_text = action.type in (None, str.lower) and not action.choices and action.nargs is None
            if action.option_strings and takes_text and action.option_strings[0] != "--help":
                yield script, action.option_strings[0]


@pytest.mark.parametrize("script, flag", list(text_flags()))
def test_no_path_or_text_in_any_flag_gives_a_traceback(script, flag, trained, tmp_path):
    root, _ = trained
    empty, folder, text = tmp_path / "empty", tmp_path / "a_folder", tmp_path / "notes.txt"
    empty.mkdir()
    folder.mkdir()
    text.write_text("not what was asked for\n")
    # settings that pass every check, on a folder with no images: a run that gets past the checks stops at once
    base = (["--data", empty, "--model", tmp_path / "m.pth", *FAST_TRAINING] if script == "train.py" else
            ["--input", empty, "--model", root / "models" / "m.pth", "--workers", "0", "--device", "cpu"])
    for value in ("", "nosuch/x.pth", folder, text):
        result = run_main(script, *base, f"{flag}={value}", cwd=tmp_path, check=False)  # any exception fails
        assert result.returncode in (0, 2), (flag, value, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 0 or (lines[-1].startswith("error: ") and "Traceback" not in result.stderr)


def test_a_resumed_run_ends_with_the_same_model_as_an_uninterrupted_one(interrupted, shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    run_main("train.py", "--resume", "--model", interrupted, cwd=tmp_path)
    whole = tmp_path / "whole.pth"
    run_main("train.py", "--data", root / "train", "--model", whole, *FAST_TRAINING, "--epochs", "3",
             "--val-fraction", "0", cwd=tmp_path)
    resumed, uninterrupted = load_checkpoint(interrupted)["state_dict"], load_checkpoint(whole)["state_dict"]
    assert all(torch.allclose(resumed[name].float(), uninterrupted[name].float(), atol=1e-5) for name in resumed)
