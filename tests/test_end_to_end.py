"""train.py and infer.py run as a user runs them, on small folders of real image files."""

import contextlib
import csv
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest
from conftest import FAST_TRAINING, REPOSITORY, fresh_copy_of_images, run_script, save_image

from common.checkpoint import load_checkpoint, read_tag_list
from common.dataset import parse_tags

EPOCH_LINE = re.compile(r"^epoch 1/2 \| train loss \d+\.\d{4} \| val loss \d+\.\d{4} \| mAP \d\.\d{3} \| "
                        r"micro-F1 \d\.\d{3} \| macro-F1 \d\.\d{3} \| TP \d+ FP \d+ FN \d+ TN \d+ \| \d+ s"
                        r"( \| saved)?$", re.MULTILINE)


def test_training_prints_one_line_per_epoch_and_writes_model_and_tags(trained):
    root, result = trained
    assert len(EPOCH_LINE.findall(result.stdout)) == 1 and "epoch 2/2 | train loss" in result.stdout
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    assert checkpoint["arch"] == "resnet18" and checkpoint["image_size"] == 32
    assert checkpoint["tags"] == sorted(checkpoint["tags"]) == read_tag_list(root / "models" / "tags.json")
    assert checkpoint["thresholds"] == [0.5] * len(checkpoint["tags"])
    assert {"mAP", "micro_f1", "tp", "fp", "fn", "tn", "epoch"} <= set(checkpoint["metrics"])
    assert checkpoint["settings"]["epochs"] == 2 and checkpoint["settings"]["weights"] == "none"


def test_inference_writes_sorted_sidecars_and_a_full_csv(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    result = run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--csv",
                        tmp_path / "out.csv", "--device", "cpu", "--workers", "2", cwd=tmp_path)
    tags = load_checkpoint(root / "models" / "m.pth")["tags"]
    with open(tmp_path / "out.csv", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["file", *tags]
    images = sorted(path.name for path in folder.glob("*.png"))
    assert sorted(row[0] for row in rows[1:]) == images
    for row in rows[1:]:
        probabilities = dict(zip(tags, map(float, row[1:])))
        written = parse_tags((folder / f"{row[0]}.txt").read_text())
        assert set(written) == {tag for tag, p in probabilities.items() if p >= 0.5}
        scores = [probabilities[tag] for tag in written]
        assert scores == sorted(scores, reverse=True)  # most probable first (ties may come either way)
    assert f"tagged {len(images)} image(s)" in result.stdout


def test_existing_sidecars_are_kept_unless_overwrite_or_merge(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    hand_written = folder / "shapes_0000.png.txt"
    hand_written.write_bytes(b"my own tag\r\n")
    model = root / "models" / "m.pth"
    common = ["--input", folder, "--model", model, "--device", "cpu", "--workers", "0", "--threshold", "0"]
    result = run_script("infer.py", *common, cwd=tmp_path)
    assert hand_written.read_bytes() == b"my own tag\r\n"
    assert "skipping 1 image(s) that already have sidecars" in result.stdout and "1 skipped" in result.stdout
    with_table = run_script("infer.py", *common, "--csv", tmp_path / "all.csv", cwd=tmp_path)
    assert hand_written.read_bytes() == b"my own tag\r\n" and "6 kept" in with_table.stdout
    run_script("infer.py", *common, "--merge", cwd=tmp_path)
    merged = parse_tags(hand_written.read_text())
    assert merged[0] == "my own tag" and len(merged) == 1 + len(load_checkpoint(model)["tags"])
    run_script("infer.py", *common, "--overwrite", cwd=tmp_path)
    assert "my own tag" not in hand_written.read_text()


def test_whitelist_limits_the_tags_written(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    (tmp_path / "whitelist.txt").write_text("circle\nnot_a_tag\n")  # found in the working folder
    result = run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu",
                        "--workers", "0", "--threshold", "0", cwd=tmp_path)
    assert "not_a_tag" in result.stdout  # named as unknown to the model
    for sidecar in folder.glob("*.txt"):
        assert parse_tags(sidecar.read_text()) == ["circle"]
    missing = run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--whitelist",
                         "nope.txt", cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "whitelist nope.txt does not exist" in missing.stderr


def test_unreadable_images_are_named_and_skipped(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu",
                        "--workers", "0", cwd=tmp_path)
    assert "broken.jpg" in result.stdout and "1 unreadable" in result.stdout
    assert not (folder / "broken.jpg.txt").exists()
    assert (folder / "shapes_0000.png.txt").exists()

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "a.png").write_bytes(b"")
    failed = run_script("infer.py", "--input", only_bad, "--model", root / "models" / "m.pth", "--workers", "0",
                        cwd=tmp_path, check=False)
    assert failed.returncode == 2 and "could be read" in failed.stderr and "Traceback" not in failed.stderr


def test_training_skips_and_names_unreadable_images(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    (root / "train" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "train" / "truncated.jpg.txt").write_text("red\n")
    save_image(root / "train" / "no_tags_yet.png")
    result = run_script("train.py", "--data", root / "train", "--model", tmp_path / "m.pth", *FAST_TRAINING,
                        cwd=tmp_path)
    assert result.stdout.count("skipping unreadable image") == 1 and "truncated.jpg" in result.stdout
    assert "no_tags_yet.png" in result.stdout  # an image without a tag file is named too
    assert load_checkpoint(tmp_path / "m.pth")["epoch"] == 1


def test_existing_model_is_backed_up_when_not_asked_to_replace_it(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    model.write_bytes(b"a model the user cares about")
    no_yes = [flag for flag in FAST_TRAINING if flag != "--yes"]
    result = run_script("train.py", "--data", root / "train", "--model", model, *no_yes, cwd=tmp_path)
    assert (tmp_path / "m.previous.pth").read_bytes() == b"a model the user cares about"
    assert "m.previous.pth" in result.stdout
    load_checkpoint(model)


def test_missing_settings_and_folders_are_one_clear_line(tmp_path):
    result = run_script("train.py", "--model", tmp_path / "m.pth", cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no training folder given: pass --data or set TRAINING in .env"
    result = run_script("train.py", "--data", tmp_path / "nowhere", "--model", "m.pth", cwd=tmp_path, check=False)
    assert "nowhere is not a folder" in result.stderr and "Traceback" not in result.stderr
    result = run_script("infer.py", "--input", tmp_path, "--model", tmp_path / "none.pth", cwd=tmp_path,
                        check=False)
    assert result.returncode == 2 and "none.pth does not exist" in result.stderr


def test_settings_from_env_file_drive_a_whole_run(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    (tmp_path / ".env").write_text(f"TRAINING={root / 'train'}\nINFERENCE_DIR={root / 'infer'}\n"
                                   f"MODEL=models/m.pth\nTAGS=models/tags.pkl\nEPOCHS=1\nIMAGE_SIZE=32\n"
                                   "ARCH=resnet18\nWEIGHTS=none\nDEVICE=cpu\nWORKERS=0\nBATCH_SIZE=8\n")
    run_script("train.py", "--yes", cwd=tmp_path)
    assert read_tag_list(tmp_path / "models" / "tags.pkl") == load_checkpoint(tmp_path / "models" / "m.pth")["tags"]
    run_script("infer.py", cwd=tmp_path)
    assert len(list((root / "infer").glob("*.png.txt"))) == 6


def test_demo_learns_in_a_fresh_folder(tmp_path):
    """The README's first command: no .env, no internet, and validation micro-F1 of at least 0.9."""
    result = run_script("train.py", "--demo", cwd=tmp_path)
    micro_f1 = float(re.search(r"validation micro-F1 is (\d\.\d+)", result.stdout).group(1))
    assert micro_f1 >= 0.9, result.stdout
    assert (tmp_path / "demo" / "model.pth").exists() and (tmp_path / "demo" / "tags.txt").exists()
    assert len(list((tmp_path / "demo" / "infer").glob("*.png.txt"))) == 12


def test_in_a_terminal_ctrl_c_during_the_countdown_keeps_the_model(shapes_dataset, tmp_path):
    """A pseudo-terminal makes train.py believe a person is watching, so it counts down."""
    pty = pytest.importorskip("pty")  # POSIX only
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    model.write_bytes(b"precious")
    leader, follower = pty.openpty()
    no_yes = [flag for flag in FAST_TRAINING if flag != "--yes"]
    process = subprocess.Popen([sys.executable, str(REPOSITORY / "train.py"), "--data", str(root / "train"),
                                "--model", str(model), *no_yes], cwd=tmp_path, stdin=follower, stdout=follower,
                               stderr=follower)
    os.close(follower)
    output = b""
    deadline = time.time() + 120
    while b"will be replaced in" not in output and time.time() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            output += os.read(leader, 4096)
    assert b"will be replaced in" in output, output.decode(errors="replace")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130, output.decode(errors="replace")
    with contextlib.suppress(OSError):
        output += os.read(leader, 4096)
    os.close(leader)
    assert model.read_bytes() == b"precious"
    assert b"left as it was" in output


def test_a_folder_of_only_unreadable_images_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.jpg", "b.png", "c.webp", "d.gif"):
        (data / name).write_bytes(b"not an image at all")
        (data / f"{name}.txt").write_text("tag\n")
    result = run_script("train.py", "--data", data, "--model", tmp_path / "m.pth", *FAST_TRAINING, cwd=tmp_path,
                        check=False)
    assert result.returncode == 2 and "could be read" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.pth").exists()
