"""infer.py's options: resuming, output formats, evaluation, precision, old models and ONNX export."""

import csv
import json
import pickle

import numpy as np
import pytest
import torch
from conftest import fresh_copy_of_images, run_script, save_image
from sklearn.metrics import average_precision_score

from common.checkpoint import load_checkpoint, save_checkpoint
from common.dataset import parse_tags, read_tag_file
from common.device import pick_device
from common.images import open_image
from common.inference import Tagger

CPU = ["--device", "cpu", "--workers", "0"]


def read_csv(path):
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0][1:], {row[0]: np.array([float(value) for value in row[1:]]) for row in rows[1:]}


def test_a_second_run_skips_images_that_already_have_sidecars(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    model = root / "models" / "m.pth"
    first = run_script("infer.py", "--input", folder, "--model", model, *CPU, cwd=tmp_path)
    assert "tagged 6 image(s): 6 sidecars written" in first.stdout
    sidecars = sorted(folder.glob("*.txt"))
    before = {path: path.stat().st_mtime_ns for path in sidecars}
    sidecars[0].unlink()  # as if the first run had been interrupted before this image
    sidecars[1].unlink()
    second = run_script("infer.py", "--input", folder, "--model", model, *CPU, cwd=tmp_path)
    assert "skipping 4 image(s) that already have sidecars" in second.stdout
    assert "tagged 2 image(s): 2 sidecars written" in second.stdout and "4 skipped" in second.stdout
    assert all(path.exists() for path in sidecars)
    assert all(path.stat().st_mtime_ns == before[path] for path in sidecars[2:])


def test_top_k_blacklist_separator_and_stem_style_shape_the_sidecars(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    tags = load_checkpoint(root / "models" / "m.pth")["tags"]
    blocked = tags[:3]
    (tmp_path / "never.txt").write_text("\n".join(blocked) + "\n")
    run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--threshold", "0",
               "--top-k", "2", "--blacklist", tmp_path / "never.txt", "--sep", ", ", "--sidecar-style", "stem",
               "--jsonl", tmp_path / "tags.jsonl", cwd=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "tags.jsonl").read_text().splitlines()]
    assert len(lines) == 6
    for line in lines:
        sidecar = folder / (line["file"].rsplit(".", 1)[0] + ".txt")  # NAME.txt, not NAME.png.txt
        text = sidecar.read_text()
        assert "\n" not in text and text.count(", ") == 1  # one comma-separated line of two tags
        written = parse_tags(text)
        assert written == list(line["tags"]) and not set(written) & set(blocked)
        probabilities = list(line["tags"].values())
        assert probabilities == sorted(probabilities, reverse=True)
        others = [tag for tag in tags if tag not in blocked and tag not in written]
        assert len(others) == len(tags) - 3 - 2
    assert not list(folder.glob("*.png.txt"))


def test_stem_style_keeps_the_full_name_when_two_images_share_a_stem(trained, tmp_path):
    root, _ = trained
    folder = tmp_path / "pair"
    save_image(folder / "photo.png", colour=(200, 30, 30))
    save_image(folder / "photo.jpg", colour=(30, 30, 200))
    run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--threshold", "0",
               "--sidecar-style", "stem", cwd=tmp_path)
    assert (folder / "photo.png.txt").exists() and (folder / "photo.jpg.txt").exists()
    assert not (folder / "photo.txt").exists()


def test_jsonl_and_printed_probabilities_agree_with_the_csv(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    result = run_script("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--csv",
                        tmp_path / "all.csv", "--jsonl", tmp_path / "chosen.jsonl", "--print-probs", cwd=tmp_path)
    tags, probabilities = read_csv(tmp_path / "all.csv")
    for line in map(json.loads, (tmp_path / "chosen.jsonl").read_text().splitlines()):
        row = probabilities[line["file"]]
        assert list(line["tags"]) == read_tag_file(folder / f"{line['file']}.txt")
        assert set(line["tags"]) == {tag for tag, p in zip(tags, row) if p >= 0.5}
        for tag, probability in line["tags"].items():
            assert probability == pytest.approx(row[tags.index(tag)], abs=1e-5)
        shown = next(text for text in result.stdout.splitlines() if text.startswith(line["file"] + ":"))
        printed = dict(item.rsplit(" ", 1) for item in shown.split(": ", 1)[1].split(", ") if item != "(no tags)")
        assert list(printed) == list(line["tags"])
        assert all(abs(float(printed[tag]) - p) <= 0.0005 + 1e-5 for tag, p in line["tags"].items())


def test_evaluate_scores_the_model_against_existing_sidecars_and_writes_nothing(trained, tmp_path):
    root, _ = trained
    folder = root / "shapes" / "train"
    before = {path: path.read_bytes() for path in folder.iterdir()}
    model = root / "models" / "m.pth"
    result = run_script("infer.py", "--input", folder, "--model", model, *CPU, "--evaluate", "--precision", "fp32",
                        cwd=tmp_path)
    assert {path: path.read_bytes() for path in folder.iterdir()} == before
    assert "wrote nothing" in result.stdout and "per tag, worst first" in result.stdout
    reported_map = float(result.stdout.split("mAP ")[1].split()[0])

    # the same mAP, computed independently by scikit-learn from the model's probabilities
    checkpoint = load_checkpoint(model)
    images = sorted(folder.glob("*.png"))
    tagger = Tagger(checkpoint, pick_device("cpu"), "fp32")
    scores = tagger.probabilities(torch.stack([tagger.dataset(images).transform(open_image(path))
                                               for path in images])).numpy()
    truth = np.array([[tag in read_tag_file(f"{path}.txt") for tag in checkpoint["tags"]] for path in images])
    expected = np.mean([average_precision_score(truth[:, i], scores[:, i]) for i in range(truth.shape[1])
                        if truth[:, i].any()])
    assert reported_map == pytest.approx(expected, abs=1e-3)

    untagged = fresh_copy_of_images(root, tmp_path, "untagged")
    nothing = run_script("infer.py", "--input", untagged, "--model", model, *CPU, "--evaluate", cwd=tmp_path,
                         check=False)
    assert nothing.returncode == 2 and "needs images with sidecars" in nothing.stderr


def test_bf16_tags_agree_with_fp32_on_nearly_every_decision(trained):
    root, _ = trained
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    images = sorted((root / "shapes" / "train").glob("*.png")) + sorted((root / "shapes" / "infer").glob("*.png"))
    transform = Tagger(checkpoint, pick_device("cpu")).dataset(images).transform
    batch = torch.stack([transform(open_image(path)) for path in images])
    full = Tagger(checkpoint, pick_device("cpu"), "fp32").probabilities(batch).numpy()
    half = Tagger(checkpoint, pick_device("cpu"), "bf16").probabilities(batch).numpy()
    assert ((full > 0.1) & (full < 0.9)).sum() >= 20  # enough undecided probabilities to make the test bite
    agreement = ((full >= 0.5) == (half >= 0.5)).mean()
    assert agreement >= 0.99, f"bf16 and fp32 agree on only {agreement:.1%} of image-tag decisions"


def test_compiled_model_gives_the_same_probabilities(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    common = ["--input", folder, "--model", root / "models" / "m.pth", *CPU, "--precision", "fp32"]
    run_script("infer.py", *common, "--csv", tmp_path / "eager.csv", cwd=tmp_path)
    run_script("infer.py", *common, "--csv", tmp_path / "compiled.csv", "--compile", cwd=tmp_path)
    _, eager = read_csv(tmp_path / "eager.csv")
    _, compiled = read_csv(tmp_path / "compiled.csv")
    assert eager.keys() == compiled.keys()
    assert all(np.allclose(eager[name], compiled[name], atol=1e-4) for name in eager)


def test_a_model_from_the_original_tool_is_recognised_used_and_converted(trained, tmp_path):
    root, _ = trained
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    # what the original multitag-trainer saved: a bare (DataParallel) state dict and a pickled tag list
    torch.save({f"module.{name}": tensor for name, tensor in checkpoint["state_dict"].items()}, tmp_path / "old.pth")
    with open(tmp_path / "old_tags.pkl", "wb") as file:
        pickle.dump(checkpoint["tags"], file)
    folder = fresh_copy_of_images(root, tmp_path)
    common = [*CPU, "--precision", "fp32", "--overwrite"]
    # the original tool's ResNets kept torchvision's layout, which this small-input model changed
    save_checkpoint({**checkpoint, "small_input": None}, tmp_path / "standard.pth")
    run_script("infer.py", "--input", folder, "--model", tmp_path / "standard.pth", *common, "--csv",
               tmp_path / "new.csv", cwd=tmp_path)
    old = ["--model", tmp_path / "old.pth", "--tags", tmp_path / "old_tags.pkl", "--image-size", "32"]
    result = run_script("infer.py", "--input", folder, *old, *common, "--csv", tmp_path / "old.csv", cwd=tmp_path)
    assert "model: resnet18" in result.stdout  # recognised from the weights alone
    _, new_probabilities = read_csv(tmp_path / "new.csv")
    _, old_probabilities = read_csv(tmp_path / "old.csv")
    assert all(np.allclose(new_probabilities[name], old_probabilities[name], atol=1e-5) for name in new_probabilities)

    run_script("infer.py", *old, "--save-as", tmp_path / "converted.pth", cwd=tmp_path)
    converted = load_checkpoint(tmp_path / "converted.pth")
    assert converted["arch"] == "resnet18" and converted["tags"] == checkpoint["tags"]
    assert converted["image_size"] == 32
    again = run_script("infer.py", *old, "--save-as", tmp_path / "converted.pth", cwd=tmp_path, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr

    with open(tmp_path / "wrong_tags.pkl", "wb") as file:
        pickle.dump(checkpoint["tags"] + ["extra"], file)
    mismatch = run_script("infer.py", "--input", folder, "--model", tmp_path / "old.pth", "--tags",
                          tmp_path / "wrong_tags.pkl", cwd=tmp_path, check=False)
    assert mismatch.returncode == 2 and "different models" in mismatch.stderr and "Traceback" not in mismatch.stderr
    no_tags = run_script("infer.py", "--input", folder, "--model", tmp_path / "old.pth", cwd=tmp_path, check=False)
    assert no_tags.returncode == 2 and "--tags" in no_tags.stderr


def test_onnx_export_gives_torchs_probabilities(trained, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    root, _ = trained
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    run_script("infer.py", "--model", root / "models" / "m.pth", "--export-onnx", tmp_path / "m.onnx", cwd=tmp_path)
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    assert json.loads(metadata["tags"]) == checkpoint["tags"] and json.loads(metadata["image_size"]) == 32

    images = sorted((root / "shapes" / "train").glob("*.png"))[:5]  # a batch size the export never saw
    tagger = Tagger(checkpoint, pick_device("cpu"), "fp32")
    batch = torch.stack([tagger.dataset(images).transform(open_image(path)) for path in images])
    (exported,) = session.run(["probabilities"], {"images": batch.numpy()})
    assert exported.shape == (5, len(checkpoint["tags"]))
    np.testing.assert_allclose(exported, tagger.probabilities(batch).numpy(), atol=1e-4)


def test_bad_option_values_are_clear_errors(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    model = ["--input", folder, "--model", root / "models" / "m.pth"]
    for flags, message in ((["--precision", "fp16", "--device", "cpu"], "fp16 is for GPUs"),
                           (["--top-k", "0"], "--top-k must be at least 1"),
                           (["--blacklist", tmp_path / "nope.txt"], "blacklist")):
        result = run_script("infer.py", *model, *flags, cwd=tmp_path, check=False)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
