"""Messy, broken and hostile input: every entry point names what it cannot use, carries on, never
loses what a user made, never runs code from a file, and shows no traceback."""

import io
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import FAST_TRAINING, REPOSITORY, run_script
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from common.checkpoint import load_checkpoint
from common.dataset import decode_tag_bytes, parse_tags, read_tag_file, scan_folder
from common.images import open_image

HAND_WRITTEN = "my own tag\r\n  another one ,  third\r\n".encode("utf-8")


def colourful(size=(48, 40), seed=0):
    """A small RGB picture with some structure, so that it is a real image to every decoder."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize(size, Image.NEAREST)


def write_awkward_valid_images(folder):
    """Valid images that naive loaders get wrong. Returns their names."""
    colourful().convert("CMYK").save(folder / "cmyk.jpg")
    palette = colourful().convert("P", palette=Image.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    palette.save(folder / "palette transparent.png", transparency=0)
    grey_alpha = colourful().convert("LA")
    grey_alpha.putalpha(128)
    grey_alpha.save(folder / "grey_alpha.png")
    Image.fromarray((np.arange(48 * 40, dtype=np.uint16).reshape(40, 48) * 30)).save(folder / "grey16.png")
    frames = [colourful(seed=seed).convert("P") for seed in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100)
    colourful(seed=4).save(folder / "photo.webp")
    colourful(seed=5).save(folder / "UPPER.JPG")
    rotated = colourful((48, 24), seed=6)
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    rotated.save(folder / "rotated.jpg", exif=exif)
    colourful(seed=7).save(folder / "café crème ☕.png")
    return ["cmyk.jpg", "palette transparent.png", "grey_alpha.png", "grey16.png", "animated.gif", "photo.webp",
            "UPPER.JPG", "rotated.jpg", "café crème ☕.png"]


def write_unreadable_files(folder):
    """Files with image names that no decoder can use. Returns their names."""
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "noise.png").write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    (folder / "notes.jpg").write_text("this is a text file with an image extension\n")
    full = io.BytesIO()
    colourful((400, 300)).save(full, format="JPEG")
    (folder / "truncated.jpg").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    # A decompression bomb: a tiny file that claims more pixels than PIL's safety limit allows.
    width = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 100
    Image.new("1", (width, width)).save(folder / "bomb.png")
    return ["empty.jpg", "noise.png", "notes.jpg", "truncated.jpg", "bomb.png"]


def write_os_junk(folder):
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "._cmyk.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / ".hidden.png").write_bytes(b"not even an image")
    (folder / "subfolder").mkdir()
    colourful(seed=9).save(folder / "subfolder" / "nested.png")


@pytest.fixture
def hostile_training_folder(tmp_path):
    """Everything at once: awkward but valid images with awkward tag files, unreadable files, junk."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    valid = write_awkward_valid_images(folder)
    unreadable = write_unreadable_files(folder)
    write_os_junk(folder)
    tag_texts = [b"\xef\xbb\xbfred\r\nround\r\n", b"\n\n  red  \nred\n\n", b"red, square , round", b"",
                 "rund, grün\n".encode("cp1252"), b"square\nround\n", b"red\nsquare\n", b"round\n", b"square, red\n"]
    for name, text in zip(valid, tag_texts):
        stem_style = name == "photo.webp"  # kohya style: NAME.txt
        (folder / (os.path.splitext(name)[0] + ".txt" if stem_style else name + ".txt")).write_bytes(text)
    for name in unreadable:
        (folder / f"{name}.txt").write_text("red\n")
    (folder / "orphan.jpg.txt").write_text("red\n")  # a tag file whose image is gone
    colourful(seed=8).save(folder / "untagged.png")  # an image without a tag file
    return folder, valid, unreadable


def test_every_awkward_valid_image_opens_as_upright_rgb(tmp_path):
    names = write_awkward_valid_images(tmp_path)
    for name in names:
        image = open_image(tmp_path / name)
        assert image.mode == "RGB" and min(image.size) > 0, name
    assert open_image(tmp_path / "rotated.jpg").size == (24, 48)  # EXIF orientation applied
    assert open_image(tmp_path / "grey16.png").getextrema()[0][1] > 200  # 16-bit range scaled, not clipped


def test_scan_ignores_os_junk_and_subfolders_unless_recursive(tmp_path):
    write_os_junk(tmp_path)
    colourful().save(tmp_path / "real.png")
    assert [image.name for image in scan_folder(tmp_path).images] == ["real.png"]
    assert sorted(image.name for image in scan_folder(tmp_path, recursive=True).images) == ["nested.png", "real.png"]


def test_training_on_a_hostile_folder_finishes_and_names_every_unreadable_file(hostile_training_folder, tmp_path):
    folder, valid, unreadable = hostile_training_folder
    result = run_script("train.py", "--data", folder, "--model", tmp_path / "m.pth", *FAST_TRAINING,
                        "--val-fraction", "0.2", cwd=tmp_path)
    for name in unreadable:
        assert name in result.stdout, f"{name} was not named"
    assert "untagged.png" in result.stdout and "orphan.jpg.txt" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    checkpoint = load_checkpoint(tmp_path / "m.pth")
    assert {"red", "round", "square", "rund", "grün"} <= set(checkpoint["tags"])  # cp1252 decoded
    assert not {".DS_Store", "Thumbs.db"} & set(result.stdout.split())  # junk is ignored quietly


def test_inference_on_a_hostile_folder_tags_every_valid_image_and_keeps_hand_written_sidecars(
        hostile_training_folder, trained, tmp_path):
    root, _ = trained
    folder, valid, unreadable = hostile_training_folder
    for sidecar in folder.glob("*.txt"):
        sidecar.unlink()
    (folder / "cmyk.jpg.txt").write_bytes(HAND_WRITTEN)
    result = run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu",
                        "--workers", "2", cwd=tmp_path)
    assert (folder / "cmyk.jpg.txt").read_bytes() == HAND_WRITTEN
    for name in valid + ["untagged.png"]:
        assert (folder / f"{name}.txt").is_file() or name == "cmyk.jpg", f"{name} got no sidecar"
    for name in unreadable:
        assert name in result.stdout and not (folder / f"{name}.txt").exists()
    assert not (folder / "subfolder" / "nested.png.txt").exists() and not (folder / ".hidden.png.txt").exists()
    assert "Traceback" not in result.stdout + result.stderr

    merged = run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu",
                        "--workers", "0", "--merge", "--threshold", "0", cwd=tmp_path)
    assert merged.returncode == 0
    kept = read_tag_file(folder / "cmyk.jpg.txt")
    assert kept[:3] == ["my own tag", "another one", "third"]  # merged after, never replaced


def test_prepare_check_names_each_unreadable_file_with_its_reason(hostile_training_folder, tmp_path):
    folder, _, unreadable = hostile_training_folder
    result = run_script("prepare.py", "check", folder, cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if "unreadable:" in line]
    for name in unreadable:
        line = next(line for line in lines if name in line)
        assert len(line.split(name, 1)[1].strip(": .")) > 10, f"no reason given for {name}: {line}"
    assert any("decompression bomb" in line.lower() or "pixels" in line.lower() for line in lines if "bomb" in line)


def test_a_training_folder_with_no_usable_image_is_a_clear_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in write_unreadable_files(folder):
        (folder / f"{name}.txt").write_text("red\n")
    result = run_script("train.py", "--data", folder, "--model", tmp_path / "m.pth", *FAST_TRAINING, cwd=tmp_path,
                        check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(folder) in result.stderr and not (tmp_path / "m.pth").exists()


def test_an_output_folder_that_cannot_exist_is_reported_before_any_work(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should be")
    result = run_script("train.py", "--data", root / "train", "--model", blocker / "m.pth", *FAST_TRAINING,
                        cwd=tmp_path, check=False)
    assert result.returncode == 2 and "a_file" in result.stderr and "epoch" not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_folders_are_reported_before_any_work(shapes_dataset, trained, tmp_path):
    root, _ = shapes_dataset
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_script("train.py", "--data", root / "train", "--model", locked / "m.pth", *FAST_TRAINING,
                            cwd=tmp_path, check=False)
        assert result.returncode == 2 and "locked" in result.stderr and "epoch" not in result.stdout
        images = tmp_path / "locked_images"
        images.mkdir()
        colourful().save(images / "a.png")
        images.chmod(0o555)
        tagged = run_script("infer.py", "--input", images, "--model", trained[0] / "models" / "m.pth", cwd=tmp_path,
                            check=False)
        assert tagged.returncode == 2 and "locked_images" in tagged.stderr and "Traceback" not in tagged.stderr
    finally:
        locked.chmod(0o755)


@given(st.binary(max_size=400))
def test_any_bytes_decode_to_tags_without_an_error(raw):
    tags = parse_tags(decode_tag_bytes(raw))
    assert all(tag and tag == tag.strip() and "," not in tag and "\n" not in tag for tag in tags)
    assert len(tags) == len(set(tags))


def test_a_pickled_tag_list_that_runs_code_is_refused_by_infer(trained, tmp_path):
    root, _ = trained
    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pkl", "wb") as file:
        pickle.dump(["red", RunsCode()], file)
    state = {name: tensor for name, tensor in load_checkpoint(root / "models" / "m.pth")["state_dict"].items()}
    torch.save(state, tmp_path / "bare.pth")
    result = run_script("infer.py", "--input", root / "shapes" / "infer", "--model", tmp_path / "bare.pth",
                        "--tags", tmp_path / "evil.pkl", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "evil.pkl" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("delay", [1.0, 4.0, 5.5, 7.0])  # while loading, in epochs, while saving
def test_ctrl_c_at_any_moment_leaves_a_loadable_model(shapes_dataset, tmp_path, delay):
    root, _ = shapes_dataset
    model = tmp_path / "m.pth"
    run_script("train.py", "--data", root / "train", "--model", model, *FAST_TRAINING, cwd=tmp_path)
    flags = [flag for flag in FAST_TRAINING if flag not in ("--epochs", "1")] + ["--epochs", "20"]
    process = subprocess.Popen([sys.executable, str(REPOSITORY / "train.py"), "--data", str(root / "train"),
                                "--model", str(model), *flags], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    # 130 when our handler ends the run; -SIGINT when Ctrl-C came while the libraries loaded
    assert process.returncode in (0, 130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr
    load_checkpoint(model)  # the previous model or a newer one, never a partial file
    if process.returncode != 0:
        assert "interrupted" in stdout + stderr
    if "epoch 1/20" in stdout:  # training had started: it says where the model is
        assert str(model) in stdout + stderr
