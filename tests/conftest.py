"""Shared fixtures and helpers: small folders of real image files made fresh in a temporary folder,
and two ways of running a script: in this process (fast) or as a user does, in a new one."""

import contextlib
import io
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from common.demo import write_demo_dataset
from common.settings import ENVIRONMENT_KEYS

REPOSITORY = Path(__file__).resolve().parent.parent

# The environment the scripts under test get: this process's as it was before any test module was
# imported (infer.py sets OMP_WAIT_POLICY when imported), without any of our settings keys, so that a
# developer's own TRAINING or EPOCHS cannot leak into a test.
OUR_KEYS = set(ENVIRONMENT_KEYS.values()) | {"MULTITAG_DEBUG"}
CHILD_ENVIRONMENT = {key: value for key, value in os.environ.items() if key not in OUR_KEYS}

# Seconds a script started by a test may take before the test fails instead of hanging.
CHILD_TIMEOUT = 300

# Several tests press Ctrl-C (send SIGINT) to the scripts they start. A shell that starts a job in
# the background (`.ci/run &`) makes it ignore SIGINT, and every child inherits that; handle it
# normally again, so that the scripts under test see the interrupts a terminal would send.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_process_state():
    """Every test starts with the environment the session started with (less our keys) and in the
    same working folder, so that nothing a test, an import or an in-process script run sets can
    change the next test."""
    folder = os.getcwd()
    restore_environment()
    yield
    os.chdir(folder)
    restore_environment()


def restore_environment():
    for key in set(os.environ) - set(CHILD_ENVIRONMENT):
        if not key.startswith("PYTEST_"):  # pytest's own, such as PYTEST_CURRENT_TEST
            del os.environ[key]
    os.environ.update(CHILD_ENVIRONMENT)


def run_script(script, *args, cwd, env=None, check=True, timeout=CHILD_TIMEOUT):
    """Run one of the scripts as a user would, in a new process in `cwd`; return the finished process."""
    environment = {**CHILD_ENVIRONMENT, **(env or {})}
    result = subprocess.run([sys.executable, str(REPOSITORY / script), *map(str, args)], cwd=cwd, env=environment,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def run_main(script, *args, cwd, env=None, check=True):
    """Run a script's main() in this process, as `python SCRIPT ARGS` would in `cwd`, and return
    what a finished process would: returncode, stdout and stderr. Seconds faster than run_script,
    which pays for a new interpreter and for importing torch."""
    module = __import__(Path(script).stem)
    stdout, stderr = io.StringIO(), io.StringIO()
    os.chdir(cwd)
    os.environ.update({key: str(value) for key, value in (env or {}).items()})
    returncode = 0
    argv = [str(arg) for arg in args]
    saved_argv, sys.argv = sys.argv, [script, *argv]  # exit_on_user_error looks for --debug there
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            module.main(argv)
    except SystemExit as exit_:
        returncode = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved_argv
    result = SimpleNamespace(returncode=returncode, stdout=stdout.getvalue(), stderr=stderr.getvalue())
    if check and returncode != 0:
        raise AssertionError(f"{script} {' '.join(argv)} exited {returncode}\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}")
    return result


class RunningScript:
    """A script started in the background, whose output lines can be waited for with a deadline
    (a plain `for line in process.stdout` would wait for ever on a child that hangs)."""

    def __init__(self, script, *args, cwd, env=None, launcher=(sys.executable,), **options):
        """launcher: what runs the script, such as torchrun's module and its options."""
        self.process = subprocess.Popen([*launcher, str(REPOSITORY / script), *map(str, args)], cwd=cwd,
                                        env={**CHILD_ENVIRONMENT, **(env or {})}, text=True, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, **options)
        self.lines, self.stdout, self.stderr = queue.Queue(), "", ""
        self._stderr_parts = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._stderr_parts.append),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line)
        put(None)

    def wait_for(self, prefix, timeout=CHILD_TIMEOUT):
        """Read stdout until a line starts with prefix; fail, showing the output so far, if none comes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                line = None
            if line is None:
                self.finish(timeout=10, kill=True)
                raise AssertionError(f"no line starting with {prefix!r}\nstdout:\n{self.stdout}\n"
                                     f"stderr:\n{self.stderr}")
            self.stdout += line
            if line.startswith(prefix):
                return line

    def interrupt(self, whole_group=False):
        """Send what Ctrl-C in a terminal sends; to the whole process group (started with
        start_new_session=True), as a terminal does, when whole_group is True."""
        if whole_group:
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGINT)

    def finish(self, timeout=CHILD_TIMEOUT, kill=False):
        """Wait for the end (killing the child if asked, or if it overstays); return its exit status."""
        if kill:
            self.process.kill()
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            returncode = self.process.wait()
        while True:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.stdout += line
        deadline = time.monotonic() + 5
        while (not self._stderr_parts or self._stderr_parts[-1] is not None) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.stderr = "".join(part for part in self._stderr_parts if part is not None)
        return returncode


def save_image(path, colour=(200, 30, 30), size=(40, 32), mode="RGB"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture
def shapes_dataset(tmp_path):
    """A small copy of the demo data: 64-px pictures of coloured shapes, tagged, plus untagged ones."""
    truth = write_demo_dataset(tmp_path / "shapes", train_count=48, infer_count=6, seed=1)
    return tmp_path / "shapes", truth


# Flags that keep a training run to a few seconds on a CPU.
FAST_TRAINING = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "--epochs", "1",
                 "--batch-size", "8", "--workers", "0", "--device", "cpu", "--yes"]


@pytest.fixture(scope="session")
def trained_once(tmp_path_factory):
    """One model trained for two epochs on the shapes data; tests get copies through `trained`."""
    root, folder = tmp_path_factory.mktemp("trained"), os.getcwd()
    write_demo_dataset(root / "shapes", train_count=48, infer_count=6, seed=1)
    result = run_main("train.py", "--data", root / "shapes" / "train", "--model", root / "models" / "m.pth",
                      "--tags", root / "models" / "tags.json", *FAST_TRAINING, "--epochs", "2", cwd=root)
    os.chdir(folder)
    return root, result


@pytest.fixture
def trained(trained_once, tmp_path):
    """A private copy of the trained model and its data, which the test may change freely."""
    source, result = trained_once
    root = tmp_path / "trained"
    shutil.copytree(source, root)
    return root, result


def fresh_copy_of_images(root, tmp_path, name="to_tag"):
    """A copy of the trained fixture's untagged images, for a test to tag."""
    folder = tmp_path / name
    shutil.copytree(root / "shapes" / "infer", folder)
    return folder


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


def distinct_photos():
    """Four different real pictures: the two halves of each of scikit-learn's two sample photographs."""
    from sklearn.datasets import load_sample_image

    pictures = {}
    for name in ("china", "flower"):
        photo = Image.fromarray(load_sample_image(f"{name}.jpg"))
        pictures[f"{name}_left"] = photo.crop((0, 0, 320, 427))
        pictures[f"{name}_right"] = photo.crop((320, 0, 640, 427))
    return pictures


def changed_copies(picture):
    """The changes a repost goes through, one each."""
    width, height = picture.size
    framed = Image.new("RGB", (width + 40, height + 40), (255, 255, 255))
    framed.paste(picture, (20, 20))
    return {"resized": picture.resize((width * 3 // 5, height * 3 // 5), Image.LANCZOS),
            "reencoded": picture,  # written as a JPEG of quality 50
            "cropped": picture.crop((8, 12, width - 10, height - 6)),
            "framed": framed,
            "brightened": ImageEnhance.Brightness(picture).enhance(1.3)}


def interrupted_run(flags, model, monkeypatch, at_epoch):
    """train.py's run with `flags`, started in this process and stopped by a Ctrl-C (as a user
    presses it) when epoch `at_epoch` begins; returns the run, whose state is saved for --resume."""
    import common.training_loop
    import train as train_script

    args = train_script.get_args_parser().parse_settings([*flags, "--model", str(model)], use_environment=False)
    run = train_script.prepare_run(args)
    run_epoch = common.training_loop.run_epoch

    def interrupted(run, epoch):
        if epoch == at_epoch:
            raise KeyboardInterrupt
        return run_epoch(run, epoch)

    monkeypatch.setattr(common.training_loop, "run_epoch", interrupted)
    with pytest.raises(SystemExit):
        common.training_loop.fit(run)
    monkeypatch.undo()
    return run


def assert_same_model(finished, expected):
    """Two checkpoints (as load_checkpoint reads them) hold the same epoch, thresholds and weights."""
    import torch

    assert finished["epoch"] == expected["epoch"]
    assert np.allclose(finished["calibration"]["thresholds"], expected["calibration"]["thresholds"])
    for name, tensor in expected["state_dict"].items():
        assert torch.allclose(finished["state_dict"][name].float(), tensor.float(), atol=1e-4), name
