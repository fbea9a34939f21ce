"""Shared fixtures: small folders of real image files made fresh in a temporary folder."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from common.demo import write_demo_dataset
from common.settings import ENVIRONMENT_KEYS

REPOSITORY = Path(__file__).resolve().parent.parent

# Several tests press Ctrl-C (send SIGINT) to the scripts they start. A shell that starts a job in
# the background (`.ci/run &`) makes it ignore SIGINT, and every child inherits that; handle it
# normally again, so that the scripts under test see the interrupts a terminal would send.
signal.signal(signal.SIGINT, signal.default_int_handler)


def run_script(script, *args, cwd, env=None, check=True):
    """Run one of the scripts as a user would, in `cwd`, and return the finished process."""
    environment = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT_KEYS.values()}
    environment.update(env or {})
    result = subprocess.run([sys.executable, str(REPOSITORY / script), *map(str, args)], cwd=cwd, env=environment,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


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
def trained(tmp_path_factory):
    """One model trained for two epochs on the shapes data, shared by the tests that need one."""
    root = tmp_path_factory.mktemp("trained")
    write_demo_dataset(root / "shapes", train_count=48, infer_count=6, seed=1)
    result = run_script("train.py", "--data", root / "shapes" / "train", "--model", root / "models" / "m.pth",
                        "--tags", root / "models" / "tags.json", *FAST_TRAINING, "--epochs", "2", cwd=root)
    return root, result


def fresh_copy_of_images(root, tmp_path, name="to_tag"):
    """A copy of the trained fixture's untagged images, for a test to tag."""
    folder = tmp_path / name
    shutil.copytree(root / "shapes" / "infer", folder)
    return folder
