"""Shared fixtures: small folders of real image files made fresh in a temporary folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from common.demo import write_demo_dataset

REPOSITORY = Path(__file__).resolve().parent.parent


def run_script(script, *args, cwd, env=None, check=True):
    """Run one of the scripts as a user would, in `cwd`, and return the finished process."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TRAINING", "INFERENCE_DIR", "MODEL", "TAGS", "WHITELIST")}
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
