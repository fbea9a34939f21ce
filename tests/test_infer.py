"""infer.py's options: resuming, output formats, evaluation, precision, old models and ONNX export."""

import csv
import ctypes
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import (
    CHILD_ENVIRONMENT,
    HAND_WRITTEN,
    REPOSITORY,
    RunningScript,
    fresh_copy_of_images,
    run_main,
    run_script,
    save_image,
)
from sklearn.metrics import average_precision_score
from test_pages import page_data

from common.checkpoint import load_checkpoint, save_checkpoint
from common.device import pick_device
from common.files import TAG_FOLDER_LOCK, tag_folder_lock
from common.images import open_image
from common.inference import Tagger
from common.tagfiles import parse_tags, read_tag_file

CPU = ["--device", "cpu", "--workers", "0"]


def read_csv(path):
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0][1:], {row[0]: np.array([float(value) for value in row[1:]]) for row in rows[1:]}


def test_a_second_run_skips_images_that_already_have_sidecars(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    model = root / "models" / "m.pth"
    first = run_main("infer.py", "--input", folder, "--model", model, *CPU, cwd=tmp_path)
    assert "tagged 6 image(s): 6 sidecars written" in first.stdout
    sidecars = sorted(folder.glob("*.txt"))
    before = {path: path.stat().st_mtime_ns for path in sidecars}
    sidecars[0].unlink()  # as if the first run had been interrupted before this image
    sidecars[1].unlink()
    second = run_main("infer.py", "--input", folder, "--model", model, *CPU, cwd=tmp_path)
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
    run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--threshold", "0",
             "--top-k", "2", "--blacklist", tmp_path / "never.txt", "--sep", ", ", "--sidecar-style", "stem",
             "--jsonl", tmp_path / "tags.jsonl", "--csv", tmp_path / "all.csv", cwd=tmp_path)
    _, all_probabilities = read_csv(tmp_path / "all.csv")
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
        allowed = {tag: p for tag, p in zip(tags, all_probabilities[line["file"]]) if tag not in blocked}
        assert min(probabilities) >= max(p for tag, p in allowed.items() if tag not in written) - 1e-5  # the top 2
    assert not list(folder.glob("*.png.txt"))


def test_the_contact_sheet_shows_every_image_with_its_written_tags_and_closest_call(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--threshold", "0.3",
                      "--html", tmp_path / "sheet.html", "--csv", tmp_path / "all.csv", cwd=tmp_path)
    tags, all_probabilities = read_csv(tmp_path / "all.csv")
    page = page_data((tmp_path / "sheet.html").read_text(encoding="utf-8"))
    images = page["images"]
    assert page["kind"] == "sheet" and sorted(image["name"] for image in images) == sorted(all_probabilities)
    assert len(images) == 6
    for image in images:
        row = dict(zip(tags, all_probabilities[image["name"]]))
        assert image["tags"] == {tag: pytest.approx(p, abs=1e-3) for tag, p in row.items() if p >= 0.3}
        tag, probability, distance = image["doubt"]
        assert distance == pytest.approx(min(abs(p - 0.3) for p in row.values()), abs=1e-4)
        assert abs(row[tag] - 0.3) == pytest.approx(distance, abs=1e-4) and image["thumb"].startswith("data:image")
        assert sorted(read_tag_file(folder / f"{image['name']}.txt")) == sorted(image["tags"])
    assert "sheet.html" in result.stdout


def test_on_a_tagged_folder_the_page_reviews_what_the_model_would_add_and_what_it_doubts(trained, tmp_path):
    root, _ = trained
    folder = tmp_path / "tagged"
    shutil.copytree(root / "shapes" / "train", folder)
    sidecars = sorted(folder.glob("*.txt"))
    (sidecars[0]).write_text("")  # lost every tag
    sidecars[1].write_text(sidecars[1].read_text() + "\nnot a tag it knows\n")
    before = {path: path.read_bytes() for path in folder.glob("*.txt")}
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--threshold", "0.4",
                      "--html", tmp_path / "review.html", "--csv", tmp_path / "all.csv", cwd=tmp_path)
    assert {path: path.read_bytes() for path in folder.glob("*.txt")} == before  # the page changes nothing
    tags, probabilities = read_csv(tmp_path / "all.csv")
    page = page_data((tmp_path / "review.html").read_text(encoding="utf-8"))
    assert page["kind"] == "review" and page["source"] == "suggestions" and page["vocabulary"] == sorted(tags)
    assert page["export_name"] == "tagged.suggestions.csv" and "review page" in result.stdout
    names = [image["name"] for image in page["images"]]
    expected = set()
    for name, row in probabilities.items():
        current = set(read_tag_file(folder / f"{name}.txt"))
        expected |= {(name, tag, "missing") for tag, p in zip(tags, row) if p >= 0.4 and tag not in current}
        expected |= {(name, tag, "extra") for tag, p in zip(tags, row) if p < 0.4 and tag in current}
    shown = [(names[item["targets"][0]], item["tag"], item["kind"]) for item in page["items"]]
    assert sorted(shown) == sorted(expected) and len(shown) == len(set(shown))  # the unknown tag is not doubted
    assert [item["score"] for item in page["items"]] == sorted((item["score"] for item in page["items"]), reverse=True)
    for image in page["images"]:  # the pictures themselves, by their path from the page, and their tags now
        assert (tmp_path / image["src"]).resolve() == (folder / image["name"]).resolve()
        assert image["tags"] == read_tag_file(folder / f"{image['name']}.txt")


def test_the_contact_sheet_goes_with_tagging_only(trained, tmp_path):
    root, _ = trained
    result = run_main("infer.py", "--input", root / "shapes" / "train", "--model", root / "models" / "m.pth", *CPU,
                      "--evaluate", "--html", tmp_path / "s.html", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "--html" in result.stderr and not (tmp_path / "s.html").exists()
    (tmp_path / "folder.html").mkdir()
    result = run_main("infer.py", "--input", root / "shapes" / "infer", "--model", root / "models" / "m.pth", *CPU,
                      "--html", tmp_path / "folder.html", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "folder.html" in result.stderr


def test_stem_style_keeps_the_full_name_when_two_images_share_a_stem(trained, tmp_path):
    root, _ = trained
    folder = tmp_path / "pair"
    save_image(folder / "photo.png", colour=(200, 30, 30))
    save_image(folder / "photo.jpg", colour=(30, 30, 200))
    run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--threshold", "0",
             "--sidecar-style", "stem", cwd=tmp_path)
    assert (folder / "photo.png.txt").exists() and (folder / "photo.jpg.txt").exists()
    assert not (folder / "photo.txt").exists()


def test_jsonl_and_printed_probabilities_agree_with_the_csv(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--csv",
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
    result = run_main("infer.py", "--input", folder, "--model", model, *CPU, "--evaluate", "--precision", "fp32",
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
    nothing = run_main("infer.py", "--input", untagged, "--model", model, *CPU, "--evaluate", cwd=tmp_path,
                       check=False)
    assert nothing.returncode == 2 and "needs images with sidecars" in nothing.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_compiled_model_gives_the_same_probabilities(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    common = ["--input", folder, "--model", root / "models" / "m.pth", *CPU, "--precision", "fp32"]
    run_main("infer.py", *common, "--csv", tmp_path / "eager.csv", cwd=tmp_path)
    run_main("infer.py", *common, "--csv", tmp_path / "compiled.csv", "--compile", cwd=tmp_path)
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
    run_main("infer.py", "--input", folder, "--model", tmp_path / "standard.pth", *common, "--csv",
             tmp_path / "new.csv", cwd=tmp_path)
    old = ["--model", tmp_path / "old.pth", "--tags", tmp_path / "old_tags.pkl", "--image-size", "32"]
    result = run_main("infer.py", "--input", folder, *old, *common, "--csv", tmp_path / "old.csv", cwd=tmp_path)
    assert "model: resnet18" in result.stdout  # recognised from the weights alone
    _, new_probabilities = read_csv(tmp_path / "new.csv")
    _, old_probabilities = read_csv(tmp_path / "old.csv")
    assert all(np.allclose(new_probabilities[name], old_probabilities[name], atol=1e-5) for name in new_probabilities)

    run_main("infer.py", *old, "--save-as", tmp_path / "converted.pth", cwd=tmp_path)
    converted = load_checkpoint(tmp_path / "converted.pth")
    assert converted["arch"] == "resnet18" and converted["tags"] == checkpoint["tags"]
    assert converted["image_size"] == 32
    again = run_main("infer.py", *old, "--save-as", tmp_path / "converted.pth", cwd=tmp_path, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr

    with open(tmp_path / "wrong_tags.pkl", "wb") as file:
        pickle.dump(checkpoint["tags"] + ["extra"], file)
    mismatch = run_main("infer.py", "--input", folder, "--model", tmp_path / "old.pth", "--tags",
                        tmp_path / "wrong_tags.pkl", cwd=tmp_path, check=False)
    assert mismatch.returncode == 2 and "different models" in mismatch.stderr and "Traceback" not in mismatch.stderr
    no_tags = run_main("infer.py", "--input", folder, "--model", tmp_path / "old.pth", cwd=tmp_path, check=False)
    assert no_tags.returncode == 2 and "--tag-list" in no_tags.stderr


def test_bad_option_values_are_clear_errors(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    model = ["--input", folder, "--model", root / "models" / "m.pth"]
    for flags, message in ((["--precision", "fp16", "--device", "cpu"], "fp16 is for GPUs"),
                           (["--top-k", "0"], "--top-k: must be at least 1, not 0"),
                           (["--blacklist", tmp_path / "nope.txt"], "blacklist")):
        result = run_main("infer.py", *model, *flags, cwd=tmp_path, check=False)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_inference_on_a_hostile_folder_tags_every_valid_image_and_keeps_hand_written_sidecars(
        hostile_training_folder, trained, tmp_path):
    root, _ = trained
    folder, valid, unreadable = hostile_training_folder
    for sidecar in folder.glob("*.txt"):
        sidecar.unlink()
    (folder / "cmyk.jpg.txt").write_bytes(HAND_WRITTEN)
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu",
                      "--workers", "2", cwd=tmp_path)
    assert (folder / "cmyk.jpg.txt").read_bytes() == HAND_WRITTEN
    for name in valid + ["untagged.png"]:
        assert (folder / f"{name}.txt").is_file() or name == "cmyk.jpg", f"{name} got no sidecar"
    for name in unreadable:
        assert name in result.stdout and not (folder / f"{name}.txt").exists()
    assert not (folder / "subfolder" / "nested.png.txt").exists() and not (folder / ".hidden.png.txt").exists()
    assert "Traceback" not in result.stdout + result.stderr

    merged = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu",
                      "--workers", "0", "--merge", "--threshold", "0", cwd=tmp_path)
    assert merged.returncode == 0
    kept = read_tag_file(folder / "cmyk.jpg.txt")
    assert kept[:3] == ["my own tag", "another one", "third"]  # merged after, never replaced


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
    result = run_main("infer.py", "--input", root / "shapes" / "infer", "--model", tmp_path / "bare.pth",
                      "--tags", tmp_path / "evil.pkl", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "evil.pkl" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_inference_as_a_user_starts_it_writes_sorted_sidecars_and_a_full_csv(trained, tmp_path):
    """The smoke test: infer.py in a new process, with image-decoding workers, as typed in a terminal."""
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
    result = run_main("infer.py", *common, cwd=tmp_path)
    assert hand_written.read_bytes() == b"my own tag\r\n"
    assert "skipping 1 image(s) that already have sidecars" in result.stdout and "1 skipped" in result.stdout
    with_table = run_main("infer.py", *common, "--csv", tmp_path / "all.csv", cwd=tmp_path)
    assert hand_written.read_bytes() == b"my own tag\r\n" and "6 kept" in with_table.stdout
    run_main("infer.py", *common, "--merge", cwd=tmp_path)
    merged = parse_tags(hand_written.read_text())
    assert merged[0] == "my own tag" and len(merged) == 1 + len(load_checkpoint(model)["tags"])
    run_main("infer.py", *common, "--overwrite", cwd=tmp_path)
    assert "my own tag" not in hand_written.read_text()


def test_whitelist_limits_the_tags_written(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    (tmp_path / "whitelist.txt").write_text("circle\nnot_a_tag\n")  # found in the working folder
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu",
                      "--workers", "0", "--threshold", "0", cwd=tmp_path)
    assert "not_a_tag" in result.stdout  # named as unknown to the model
    for sidecar in folder.glob("*.txt"):
        assert parse_tags(sidecar.read_text()) == ["circle"]
    missing = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--whitelist",
                       "nope.txt", cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "whitelist nope.txt does not exist" in missing.stderr


def test_unreadable_images_are_named_and_skipped(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu",
                      "--workers", "0", cwd=tmp_path)
    assert "broken.jpg" in result.stdout and "1 unreadable" in result.stdout
    assert not (folder / "broken.jpg.txt").exists()
    assert (folder / "shapes_0000.png.txt").exists()

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "a.png").write_bytes(b"")
    failed = run_main("infer.py", "--input", only_bad, "--model", root / "models" / "m.pth", "--workers", "0",
                      cwd=tmp_path, check=False)
    assert failed.returncode == 2 and "could be read" in failed.stderr and "Traceback" not in failed.stderr


def test_subfolders_are_tagged_with_recursive_and_named_by_their_path_in_the_tables(trained, tmp_path):
    root, _ = trained
    folder = tmp_path / "albums"
    for album, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
        save_image(folder / album / "photo.png", colour)  # the same name in two folders
    save_image(folder / "b" / "photo.jpg", (30, 200, 30))  # and the same stem in one folder
    model = root / "models" / "m.pth"
    flat = run_main("infer.py", "--input", folder, "--model", model, *CPU, cwd=tmp_path, check=False)
    assert flat.returncode == 2 and "add --recursive" in flat.stderr
    run_main("infer.py", "--input", folder, "--model", model, *CPU, "--recursive", "--threshold", "0",
             "--sidecar-style", "stem", "--csv", "all.csv", "--jsonl", "all.jsonl", cwd=tmp_path)
    _, probabilities = read_csv(tmp_path / "all.csv")  # a relative --csv is relative to the working folder
    assert sorted(probabilities) == ["a/photo.png", "b/photo.jpg", "b/photo.png"]
    lines = [json.loads(line)["file"] for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert sorted(lines) == sorted(probabilities)
    # NAME.txt where the stem is free, the full name where two images share it
    assert (folder / "a" / "photo.txt").is_file() and not (folder / "b" / "photo.txt").exists()
    assert (folder / "b" / "photo.png.txt").is_file() and (folder / "b" / "photo.jpg.txt").is_file()
    assert not (tmp_path / "photo.txt").exists()


def test_a_tag_list_that_disagrees_with_the_model_is_named(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    model = root / "models" / "m.pth"
    tags = load_checkpoint(model)["tags"]
    (tmp_path / "reordered.txt").write_text("\n".join(reversed(tags)) + "\n")
    reordered = run_main("infer.py", "--input", folder, "--model", model, *CPU, "--tags", "reordered.txt",
                         cwd=tmp_path)
    assert "differs from the model's own list; using the model's" in reordered.stdout
    assert "tagged 6 image(s)" in reordered.stdout
    (tmp_path / "short.txt").write_text("\n".join(tags[:-1]) + "\n")
    short = run_main("infer.py", "--input", folder, "--model", model, *CPU, "--tags", "short.txt", "--overwrite",
                     cwd=tmp_path, check=False)
    assert short.returncode == 2
    assert f"has {len(tags) - 1} tags but the model was trained on {len(tags)}" in short.stderr
    missing = run_main("infer.py", "--input", folder, "--model", model, *CPU, "--tags", "gone.txt", "--overwrite",
                       cwd=tmp_path)
    assert f"using the {len(tags)} tags stored in the model" in missing.stdout


def test_an_image_where_no_tag_passes_gets_an_empty_sidecar_and_counts_in_evaluation(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    checkpoint = load_checkpoint(root / "models" / "m.pth")
    checkpoint["state_dict"]["fc.bias"] -= 1000  # a model sure that no tag is present in any image
    model = tmp_path / "doubter.pth"
    save_checkpoint(checkpoint, model)
    result = run_main("infer.py", "--input", folder, "--model", model, *CPU, "--jsonl", tmp_path / "t.jsonl",
                      "--print-probs", cwd=tmp_path)
    sidecars = sorted(folder.glob("*.png.txt"))
    assert len(sidecars) == 6 and all(path.read_text() == "" for path in sidecars)  # "no tags", as a user writes it
    assert all(json.loads(line)["tags"] == {} for line in (tmp_path / "t.jsonl").read_text().splitlines())
    assert result.stdout.count("(no tags)") == 6

    labelled = root / "shapes" / "train"
    (labelled / "shapes_0000.png.txt").write_text("circle\nsparkly\nunicorn\n")  # tags the model never learned
    evaluated = run_main("infer.py", "--input", labelled, "--model", model, *CPU, "--evaluate", cwd=tmp_path)
    assert "2 tag(s) in the sidecars are unknown to the model and are not scored: sparkly, unicorn" in (
        evaluated.stdout)
    assert "evaluated 48 image(s)" in evaluated.stdout
    assert re.search(r"recall 0\.000 F1 0\.000", evaluated.stdout)  # nothing predicted: every true tag missed


def test_output_files_that_cannot_be_written_are_reported_before_any_work(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should be")
    for table in ("--csv", "--jsonl"):
        result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, table,
                          blocker / "out", cwd=tmp_path, check=False)
        assert result.returncode == 2 and "cannot write the output file to" in result.stderr
        assert "a_file" in result.stderr
    assert not list(folder.glob("*.txt"))  # nothing was tagged
    onnx = run_main("infer.py", "--model", root / "models" / "m.pth", "--export-onnx", blocker / "m.onnx",
                    cwd=tmp_path, check=False)
    assert onnx.returncode == 2 and "a_file" in onnx.stderr


def without_permission_override():
    """For a child of root: give up the capabilities that let root write to any folder (CI runs as
    root), so that a read-only folder is read-only to the child, as it is to a user."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, dropped from the bounding set
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # 24: PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_read_only_folder_is_reported_before_any_work(trained, tmp_path):
    root, _ = trained
    images = fresh_copy_of_images(root, tmp_path, "locked_images")
    images.chmod(0o555)
    try:
        options = {"preexec_fn": without_permission_override} if os.geteuid() == 0 else {}
        result = subprocess.run([sys.executable, str(REPOSITORY / "infer.py"), "--input", str(images), "--model",
                                 str(root / "models" / "m.pth"), "--workers", "0"], cwd=tmp_path,
                                env=CHILD_ENVIRONMENT, capture_output=True, text=True, timeout=240, **options)
    finally:
        images.chmod(0o755)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "cannot write the tag files to" in result.stderr and "locked_images" in result.stderr
    assert "Traceback" not in result.stderr and not list(images.glob("*.txt"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_interrupted_run_finished_by_a_second_run_leaves_complete_sidecars_and_tables(trained, tmp_path):
    root, _ = trained
    folder = tmp_path / "many"
    images = sorted((root / "shapes" / "infer").glob("*.png")) + sorted((root / "shapes" / "train").glob("*.png"))
    folder.mkdir()
    for copy in range(8):  # enough images that the run is still going when Ctrl-C comes
        for image in images:
            shutil.copy(image, folder / f"{copy}_{image.name}")
    names = sorted(path.name for path in folder.glob("*.png"))
    flags = ["--input", folder, "--model", root / "models" / "m.pth", "--device", "cpu", "--workers", "1",
             "--batch-size", "4", "--csv", tmp_path / "all.csv", "--jsonl", tmp_path / "all.jsonl"]
    running = RunningScript("infer.py", *flags, cwd=tmp_path)
    deadline = time.monotonic() + 240
    while len(list(folder.glob("*.txt"))) < 8 and time.monotonic() < deadline and running.process.poll() is None:
        time.sleep(0.05)
    running.interrupt()
    assert running.finish() == 130, running.stdout + running.stderr
    done = len(list(folder.glob("*.txt")))
    assert 8 <= done < len(names), "Ctrl-C came too late to interrupt the run"
    assert not (tmp_path / "all.csv").exists() and not (tmp_path / "all.jsonl").exists()  # never half a table
    assert not list(tmp_path.glob(".all.*")) and not list(folder.glob(".*.tmp"))  # nor a temporary left behind
    for sidecar in folder.glob("*.txt"):
        parse_tags(sidecar.read_text())

    finished = run_script("infer.py", *flags, cwd=tmp_path)
    summary = f"tagged {len(names)} image(s): {len(names) - done} sidecars written, 0 merged, {done} kept"
    assert summary in finished.stdout
    assert sorted(path.name for path in folder.glob("*.txt")) == sorted(f"{name}.txt" for name in names)
    _, probabilities = read_csv(tmp_path / "all.csv")
    assert sorted(probabilities) == names
    assert sorted(json.loads(line)["file"] for line in (tmp_path / "all.jsonl").read_text().splitlines()) == names


def test_a_second_run_on_a_folder_being_tagged_is_refused_in_one_line_and_writes_nothing(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    flags = ["--input", folder, "--model", root / "models" / "m.pth", *CPU]
    with tag_folder_lock(folder):  # what another infer.py (or prepare.py) run holds while it writes
        refused = run_main("infer.py", *flags, "--csv", tmp_path / "all.csv", cwd=tmp_path, check=False)
        evaluated = run_main("infer.py", *flags, "--evaluate", cwd=tmp_path, check=False)  # writes nothing: no lock
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        f"error: another run (process {os.getpid()}) is writing tag files in {folder}: wait for it to end (or stop "
        "it), then run this command again to do what is left"]
    assert not list(folder.glob("*.txt")) and not (tmp_path / "all.csv").exists()
    assert "needs images with sidecars" in evaluated.stderr  # it got as far as looking for them
    run_main("infer.py", *flags, cwd=tmp_path)
    assert len(list(folder.glob("*.txt"))) == 6 and not (folder / TAG_FOLDER_LOCK).exists()


def test_temporaries_left_by_a_killed_run_are_cleared_by_the_next(trained, tmp_path):
    """kill -9 cannot remove the temporary a write was filling; the next run on the folder does."""
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    image = sorted(folder.glob("*.png"))[0]
    killed = [folder / f".{image.name}.txt.k1ll3d_x.tmp", tmp_path / ".all.csv.a1b2c3d4.tmp"]
    someone_elses = [folder / ".notes.txt.a1b2c3d4.tmp", tmp_path / ".other.csv.a1b2c3d4.tmp"]
    for path in killed + someone_elses:
        path.write_text("cut off mid-wr")
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU,
                      "--csv", tmp_path / "all.csv", cwd=tmp_path)
    assert "removed 2 unfinished temporary file(s) left by an interrupted run" in result.stdout
    assert not any(path.exists() for path in killed) and all(path.exists() for path in someone_elses)
    assert (tmp_path / "all.csv").exists() and len(list(folder.glob("*.txt"))) == 6


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_file_size_limit_below_a_batch_stops_the_image_decoding_processes_with_one_line(trained, tmp_path):
    """The decoding processes pass each batch on as a file in /dev/shm, which `ulimit -f` also limits."""
    import resource

    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = subprocess.run([sys.executable, str(REPOSITORY / "infer.py"), "--input", str(folder), "--model",
                             str(root / "models" / "m.pth"), "--device", "cpu", "--workers", "1"], cwd=tmp_path,
                            env=CHILD_ENVIRONMENT, capture_output=True, text=True, timeout=120,
                            preexec_fn=limit_file_size)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: the image-decoding processes could not hand their images over: a file-size limit (ulimit -f) is "
        "lower than one batch of decoded images, which they pass on as files in /dev/shm. Nothing was half-written. "
        "Raise the limit, or decode in the main process with --workers 0, then run the same command again to carry "
        "on"]
    assert not list(folder.glob("*.txt")) and not list(folder.glob(".*"))


def test_flags_a_checkpoint_does_not_use_are_named_as_ignored(trained, tmp_path):
    root, _ = trained
    folder = fresh_copy_of_images(root, tmp_path)
    result = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--arch",
                      "resnet50", "--image-size", "128", cwd=tmp_path)
    assert "note: --arch and --image-size ignored: " in result.stdout and "records its own (resnet18, 32 px)" in (
        result.stdout)
    quiet = run_main("infer.py", "--input", folder, "--model", root / "models" / "m.pth", *CPU, "--overwrite",
                     cwd=tmp_path)
    assert "ignored" not in quiet.stdout
