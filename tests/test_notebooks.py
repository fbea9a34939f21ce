"""The notebooks: committed without outputs, thin drivers of common/ and the scripts, and they run."""

import os
import re

import nbformat
import pytest
from conftest import REPOSITORY

from common.checkpoint import load_checkpoint
from common.demo import write_demo_dataset

NOTEBOOKS = ("prepare.ipynb", "train.ipynb", "infer.ipynb")  # the order a user runs them in


def code_cells(name):
    return [cell for cell in nbformat.read(REPOSITORY / name, as_version=4).cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebooks_hold_no_outputs(name):
    dirty = [index for index, cell in enumerate(code_cells(name)) if cell.outputs or cell.execution_count]
    assert not dirty, f"{name} has outputs in code cells {dirty}: strip them (pre-commit runs nbstripout)"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_import_instead_of_defining_their_own_machinery(name):
    source = "\n".join(cell.source for cell in code_cells(name))
    assert not re.search(r"^\s*class\s", source, re.MULTILINE), f"{name} defines a class"
    assert not re.search(r"Dataset\)|nn\.Module|def pick_device|torch\.load\(", source), name
    assert "from common." in source or "import common" in source


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_notebooks_run_top_to_bottom_on_the_environment_settings(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    write_demo_dataset(tmp_path / "shapes", train_count=48, infer_count=6, seed=1)
    training, to_tag = tmp_path / "shapes" / "train", tmp_path / "shapes" / "infer"
    training_before = {path.name: path.read_bytes() for path in training.iterdir()}
    settings = {"TRAINING": training, "INFERENCE_DIR": to_tag, "MODEL": tmp_path / "models" / "nb.pth",
                "TAGS": tmp_path / "models" / "nb.tags.txt", "EPOCHS": 1, "IMAGE_SIZE": 64, "BATCH_SIZE": 16,
                "ARCH": "resnet18", "WEIGHTS": "none", "DEVICE": "cpu", "WORKERS": 0}
    for key, value in settings.items():
        monkeypatch.setenv(key, str(value))  # the kernel inherits this process's environment
    # The kernel works in an empty folder of its own, so that a developer's .env or whitelist.txt in the
    # repository cannot change the run; the repository is on its import path, as it is for a user who
    # opens the notebooks there.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])))
    working = tmp_path / "kernel"
    working.mkdir()
    for name in NOTEBOOKS:
        notebook = nbformat.read(REPOSITORY / name, as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(working)}}).execute()
        if name == "prepare.ipynb":  # it checks TRAINING and must leave it exactly as it was
            assert {path.name: path.read_bytes() for path in training.iterdir()} == training_before
    checkpoint = load_checkpoint(settings["MODEL"])
    assert checkpoint["arch"] == "resnet18" and checkpoint["image_size"] == 64 and checkpoint["epoch"] == 1
    assert settings["TAGS"].is_file()
    images = sorted(to_tag.glob("*.png"))
    assert images and all((to_tag / f"{image.name}.txt").is_file() for image in images)
