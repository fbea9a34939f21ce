"""The checkpoint describes itself, loads safely, and is written atomically; so is the tag list."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from common.checkpoint import (
    load_checkpoint,
    make_checkpoint,
    model_from_checkpoint,
    read_tag_list,
    save_checkpoint,
    write_tag_list,
)
from common.errors import UserError
from common.model import build_model

TAGS = ["cat", "dog", "outdoors"]


def tiny_checkpoint(model=None):
    model = model or build_model("resnet18", len(TAGS), "none")
    # settings and metrics hold what a run really has: Paths, NumPy numbers and torch scalars
    return make_checkpoint(model, arch="resnet18", tags=TAGS, thresholds=np.array([0.5, 0.4, 0.6]), image_size=32,
                           mean=[0.5] * 3, std=[0.25] * 3,
                           settings={"epochs": 1, "data": Path("data") / "train", "lr": np.float32(0.25),
                                     "batch_size": np.int64(8), "nested": {"size": torch.tensor(3)}},
                           metrics={"mAP": np.float64(0.75), "tp": np.int64(12), "scale": torch.tensor(1.5)},
                           epoch=np.int64(1))


def test_round_trip_rebuilds_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", len(TAGS), "none").eval()
    save_checkpoint(tiny_checkpoint(model), tmp_path / "m.pth")
    loaded = load_checkpoint(tmp_path / "m.pth")
    assert (loaded["arch"], loaded["tags"], loaded["thresholds"], loaded["image_size"]) == (
        "resnet18", TAGS, [0.5, 0.4, 0.6], 32)
    assert loaded["metrics"] == {"mAP": 0.75, "tp": 12, "scale": 1.5} and loaded["epoch"] == 1
    assert loaded["settings"] == {"epochs": 1, "data": str(Path("data") / "train"), "lr": 0.25, "batch_size": 8,
                                  "nested": {"size": 3}}
    plain = (loaded["metrics"]["mAP"], loaded["metrics"]["tp"], loaded["settings"]["batch_size"], loaded["epoch"])
    assert [type(value) for value in plain] == [float, int, int, int]  # not NumPy or torch types
    assert all(type(value) is float for value in loaded["thresholds"])
    rebuilt = model_from_checkpoint(loaded, torch.device("cpu"))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(images), model(images))


def test_checkpoint_loads_with_weights_only(tmp_path):
    save_checkpoint(tiny_checkpoint(), tmp_path / "m.pth")
    torch.load(tmp_path / "m.pth", weights_only=True)  # raises if anything but plain data was stored


class RunsCode:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('ran')",))


def test_checkpoint_with_pickled_code_is_refused_and_the_code_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "multitag-trainer", "payload": RunsCode()}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match="could run code"):
        load_checkpoint(tmp_path / "evil.pth")
    assert not (tmp_path / "PWNED").exists()


def test_unhelpful_files_get_clear_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")
    for name, content, message in (("text.pth", b"not a model", "holds text, not a PyTorch model"),
                                   ("json.pth", b'{"tags": ["a"]}', "holds JSON, not a PyTorch model"),
                                   ("empty.pth", b"", "is empty, not a PyTorch file"),
                                   ("cut.pth", b"PK\x03\x04 the start of a zip", "damaged or incomplete PyTorch file")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError, match=message) as error:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(error.value) and "file an issue" not in str(error.value)  # no PyTorch advice
    torch.save(build_model("resnet18", 2, "none").state_dict(), tmp_path / "bare.pth")
    with pytest.raises(UserError, match="not a multitag-trainer checkpoint"):
        load_checkpoint(tmp_path / "bare.pth")


def test_weights_that_do_not_fit_the_tags_are_an_error(tmp_path):
    checkpoint = tiny_checkpoint()
    checkpoint["tags"] = TAGS + ["extra"]
    checkpoint["thresholds"] = [0.5] * 4
    with pytest.raises(UserError, match="do not fit"):
        model_from_checkpoint(checkpoint, torch.device("cpu"))


@pytest.mark.parametrize("name", ["tags.txt", "tags.json", "tags.pkl"])
def test_tag_list_round_trip_in_every_format(tmp_path, name):
    tags = ["long hair", "café", "1girl"]
    write_tag_list(tmp_path / name, tags)
    assert read_tag_list(tmp_path / name) == tags


def test_tag_list_formats_are_the_documented_ones(tmp_path):
    write_tag_list(tmp_path / "t.txt", ["a", "b"])
    write_tag_list(tmp_path / "t.json", ["a", "b"])
    write_tag_list(tmp_path / "t.pkl", ["a", "b"])
    assert (tmp_path / "t.txt").read_text() == "a\nb\n"
    assert json.loads((tmp_path / "t.json").read_text()) == ["a", "b"]
    assert pickle.loads((tmp_path / "t.pkl").read_bytes()) == ["a", "b"]  # what the original tool reads


def test_tag_pickle_holding_anything_but_strings_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(["a", RunsCode()]))
    with pytest.raises(UserError, match="refused"):
        read_tag_list(tmp_path / "evil.pkl")
    assert not (tmp_path / "PWNED").exists()
    (tmp_path / "numbers.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(UserError, match="list of strings"):
        read_tag_list(tmp_path / "numbers.pkl")


