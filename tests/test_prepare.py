"""prepare.py's subcommands: tag, folders, check and demo."""

import contextlib
import csv
import io
import json
import os
import re

import numpy as np
import pytest
import torch
from conftest import FAST_TRAINING, run_main, run_script, save_image

import prepare
from common.errors import UserError
from common.files import tag_folder_lock
from common.folder_scan import scan_folder
from common.tagfiles import parse_tags, read_tag_file

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)


def test_tag_merges_into_existing_sidecars_and_creates_missing_ones(tmp_path):
    save_image(tmp_path / "a.jpg")
    (tmp_path / "a.jpg.txt").write_text("old\nindoor\n")
    save_image(tmp_path / "b.png")
    save_image(tmp_path / "c.png")
    (tmp_path / "c.txt").write_text("x, y")  # kohya style is kept as it is
    result = run_main("prepare.py", "tag", tmp_path, "--tags", "indoor, new", cwd=tmp_path)
    assert (tmp_path / "a.jpg.txt").read_text() == "old\nindoor\nnew\n"
    assert (tmp_path / "b.png.txt").read_text() == "indoor\nnew\n"
    assert (tmp_path / "c.txt").read_text() == "x, y, indoor, new"
    assert "changed 3 of 3" in result.stdout


def test_tag_dry_run_changes_nothing(tmp_path):
    save_image(tmp_path / "a.jpg")
    assert prepare.add_tags(tmp_path, ["cat"], dry_run=True) == 1
    assert not (tmp_path / "a.jpg.txt").exists()


def test_tag_waits_its_turn_while_another_run_writes_tag_files_in_the_folder(tmp_path):
    save_image(tmp_path / "a.jpg")
    with tag_folder_lock(tmp_path):  # as a running infer.py holds it
        refused = run_main("prepare.py", "tag", tmp_path, "--add", "cat", cwd=tmp_path, check=False)
        run_main("prepare.py", "tag", tmp_path, "--add", "cat", "--dry-run", cwd=tmp_path)  # changes nothing: fine
    assert refused.returncode == 2 and refused.stderr.startswith(
        f"error: another run (process {os.getpid()}) is writing tag files in {tmp_path}")
    assert not (tmp_path / "a.jpg.txt").exists()
    run_main("prepare.py", "tag", tmp_path, "--add", "cat", cwd=tmp_path)
    assert (tmp_path / "a.jpg.txt").read_text() == "cat\n"


def test_folders_turn_class_folders_into_sidecars(tmp_path):
    source, destination = tmp_path / "classes", tmp_path / "dataset"
    save_image(source / "cat" / "1.jpg", RED)
    save_image(source / "cat" / "indoor" / "2.jpg", BLUE)
    save_image(source / "dog" / "1.jpg", GREEN)  # same name as cat/1.jpg, different picture
    save_image(source / "dog" / "same_as_cat.jpg", RED)  # same picture as cat/1.jpg
    result = run_main("prepare.py", "folders", source, destination, cwd=tmp_path)
    scan = scan_folder(destination)
    tags = {image.name: read_tag_file(scan.tag_file_of[image]) for image in scan.images}
    assert tags == {"1.jpg": ["cat", "dog"], "2.jpg": ["cat", "indoor"], "1_1.jpg": ["dog"]}
    assert (source / "cat" / "1.jpg").exists()  # copied, not moved
    assert "1 duplicate(s) merged, 1 renamed" in result.stdout


def test_folders_never_overwrite_what_is_already_in_the_destination(tmp_path):
    source, destination = tmp_path / "classes", tmp_path / "dataset"
    save_image(source / "cat" / "a.jpg", RED)
    save_image(source / "cat" / "b.jpg", BLUE)
    save_image(destination / "a.jpg", RED)  # the same picture is already there, with the user's tags
    (destination / "a.jpg.txt").write_text("favourite\n")
    save_image(destination / "b.jpg", GREEN)  # a different picture holds the name b.jpg
    (destination / "b.jpg.txt").write_text("mine\n")
    prepare.convert_class_folders(source, destination)
    assert read_tag_file(destination / "a.jpg.txt") == ["favourite", "cat"]
    assert read_tag_file(destination / "b.jpg.txt") == ["mine"]
    assert read_tag_file(destination / "b_1.jpg.txt") == ["cat"]


def test_folders_move_and_dry_run(tmp_path):
    source, destination = tmp_path / "classes", tmp_path / "dataset"
    save_image(source / "cat" / "a.jpg", RED)
    prepare.convert_class_folders(source, destination, dry_run=True)
    assert not destination.exists()
    prepare.convert_class_folders(source, destination, move=True)
    assert not (source / "cat" / "a.jpg").exists()
    assert read_tag_file(destination / "a.jpg.txt") == ["cat"]


def test_folders_refuses_a_destination_inside_the_source(tmp_path):
    save_image(tmp_path / "classes" / "cat" / "a.jpg")
    with pytest.raises(UserError, match="inside the source"):
        prepare.convert_class_folders(tmp_path / "classes", tmp_path / "classes" / "out")


def test_check_reports_counts_frequencies_and_every_problem(tmp_path):
    for index in range(3):
        save_image(tmp_path / f"cat{index}.jpg")
        (tmp_path / f"cat{index}.jpg.txt").write_text("cat\n" + ("rare\n" if index == 0 else ""))
    save_image(tmp_path / "untagged.png")
    (tmp_path / "orphan.jpg.txt").write_text("ghost\n")
    (tmp_path / "broken.png").write_bytes(b"nope")
    (tmp_path / "broken.png.txt").write_text("")
    result = run_script("prepare.py", "check", tmp_path, "--min-count", "2", cwd=tmp_path)  # as a user does
    report = result.stdout
    assert "images: 5 (4 with a tag file, 1 of them empty)" in report
    assert re.search(r"cat\s+3", report) and "rare (1)" in report
    assert "untagged.png" in report and "orphan.jpg.txt" in report
    assert "unreadable" in report and "broken.png" in report


def test_check_defaults_to_the_training_folder_from_env(tmp_path):
    data = tmp_path / "data"
    save_image(data / "a.jpg")
    (data / "a.jpg.txt").write_text("x\n")
    (tmp_path / ".env").write_text(f"TRAINING={data}\n")
    assert "images: 1 (1 with a tag file" in run_main("prepare.py", "check", cwd=tmp_path).stdout
    (tmp_path / ".env").unlink()
    missing = run_main("prepare.py", "check", cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "set TRAINING in .env" in missing.stderr


def test_demo_writes_a_tagged_training_folder_and_a_folder_to_tag(tmp_path):
    run_main("prepare.py", "demo", tmp_path / "d", cwd=tmp_path)
    scan = scan_folder(tmp_path / "d" / "train")
    assert len(scan.images) == len(scan.tag_file_of) > 100
    assert all(parse_tags(path.read_text()) for path in scan.tag_file_of.values())
    assert list((tmp_path / "d" / "infer").glob("*.txt")) == []
    first = (tmp_path / "d" / "train" / "shapes_0000.png").read_bytes()
    run_main("prepare.py", "demo", tmp_path / "again", cwd=tmp_path)
    assert (tmp_path / "again" / "train" / "shapes_0000.png").read_bytes() == first  # deterministic


def test_prepare_check_names_each_unreadable_file_with_its_reason(hostile_training_folder, tmp_path):
    folder, _, unreadable = hostile_training_folder
    result = run_main("prepare.py", "check", folder, cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if "unreadable:" in line]
    for name in unreadable:
        line = next(line for line in lines if name in line)
        assert len(line.split(name, 1)[1].strip(": .")) > 10, f"no reason given for {name}: {line}"
    assert any("decompression bomb" in line.lower() or "pixels" in line.lower() for line in lines if "bomb" in line)


def test_counts_say_what_actually_happened(tmp_path):
    source, destination = tmp_path / "classes", tmp_path / "dataset"
    save_image(source / "cat" / "a.jpg", RED)
    save_image(source / "cat" / "b.jpg", BLUE)
    first = run_main("prepare.py", "folders", source, destination, cwd=tmp_path)
    assert "copied 2 image(s) into" in first.stdout
    again = run_main("prepare.py", "folders", source, destination, cwd=tmp_path)
    assert "copied 0 image(s) into" in again.stdout and "2 already there (tags merged)" in again.stdout
    (destination / "a.jpg.txt").write_text("cat\nindoor\n")
    tagged = run_main("prepare.py", "tag", destination, "--add", "indoor, outdoor", cwd=tmp_path)
    assert "changed 2 of 2 sidecar(s)" in tagged.stdout and "added indoor to 1, outdoor to 2" in tagged.stdout
    assert read_tag_file(destination / "a.jpg.txt") == ["cat", "indoor", "outdoor"]
    unchanged = run_main("prepare.py", "tag", destination, "--add", "outdoor", cwd=tmp_path)
    assert "changed 0 of 2" in unchanged.stdout and "added nothing; 2 already had every tag" in unchanged.stdout


def test_checking_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_main("prepare.py", "check", tmp_path / "empty", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "found no images in" in result.stderr


# ----------------------------------------------------------------------------- audit, fix, undo
AUDIT_TRAINING = [flag for flag in FAST_TRAINING if flag != "--yes"]  # its --epochs is the audit's own


def test_audit_ranks_suspects_into_a_csv_and_a_page_and_changes_no_tag_file(shapes_dataset, tmp_path):
    root, _ = shapes_dataset
    folder = root / "train"
    victim = folder / f"{sorted(folder.glob('*.png'))[0].name}.txt"
    victim.write_text("\n".join(read_tag_file(victim)[1:]) + "\n")  # a tag gone missing
    (folder / "broken.png").write_bytes(b"not a picture")
    (folder / "broken.png.txt").write_text("red\n")
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    result = run_main("prepare.py", "audit", folder, "--folds", "2", "--method", "confidence", *AUDIT_TRAINING,
                      cwd=tmp_path)
    suspects = root / "train.suspects.csv"
    with open(suspects, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["image", "tag", "kind", "given", "probability", "score", "accept"]
    tagged = len([path for path in folder.glob("*.png") if (folder / f"{path.name}.txt").exists()]) - 1
    tags = {tag for sidecar in folder.glob("*.txt") for tag in read_tag_file(sidecar)}
    assert len(rows) == min(1000, tagged * len(tags))  # every pair of every image, up to --top
    scores = [float(row["score"]) for row in rows]
    assert scores == sorted(scores, reverse=True) and all(row["accept"] == "" for row in rows)
    for row in rows:
        given = row["tag"] in read_tag_file(folder / f"{row['image']}.txt")
        assert row["given"] == str(int(given)) and row["kind"] == ("extra" if given else "missing")
        assert float(row["score"]) == pytest.approx(1 - float(row["probability"]) if given
                                                    else float(row["probability"]), abs=2e-4)
    assert "<html" in (root / "train.suspects.html").read_text(encoding="utf-8")
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # nothing changed
    assert not (root / "train.suspects.folds").exists()  # finished: no fold left to resume from
    assert "fold 2/2 epoch 1/1" in result.stdout and "prepare.py fix" in result.stdout
    assert "skipped 1 unreadable image(s), which no model could judge: broken.png" in result.stdout
    assert "broken.png" not in {row["image"] for row in rows}


def test_an_interrupted_audit_reuses_its_finished_folds(shapes_dataset, tmp_path):
    import train
    from common.audit import out_of_fold_probabilities
    from common.distributed import Processes, Runtime
    from common.folder_scan import load_training_data

    root, _ = shapes_dataset
    args = train.get_args_parser().parse_settings(["--data", str(root / "train"), *AUDIT_TRAINING],
                                                  use_environment=False)
    paths, targets, vocabulary = load_training_data(args, Processes())
    data = paths[:24], targets[:24], vocabulary  # fewer images: three audits to run
    work = tmp_path / "folds"

    def audit():
        return out_of_fold_probabilities(args, data, 2, work, Runtime(torch.device("cpu"), "fp32"), None)

    _, _, first, _ = audit()
    assert sorted(path.name for path in work.iterdir()) == ["fold-1-of-2.npz", "fold-2-of-2.npz"]
    (work / "fold-2-of-2.npz").unlink()  # as if the audit stopped during the second fold
    names, targets, again, _ = audit()
    assert np.array_equal(first, again) and not np.isnan(again).any() and len(names) == len(targets) == 24
    args.lr = args.lr / 2  # another recipe: the kept folds no longer apply
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        audit()
    assert "reusing" not in printed.getvalue()


def test_a_quick_audit_judges_a_models_validation_images(trained, tmp_path):
    root, _ = trained
    run_main("prepare.py", "audit", root / "shapes" / "train", "--from-model", root / "models" / "m.pth",
             "--output", tmp_path / "quick.csv", "--workers", "0", cwd=root)
    with open(tmp_path / "quick.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    validation = json.loads((root / "models" / "m.split.json").read_text())["validation"]
    assert rows and {row["image"] for row in rows} <= set(validation)
    assert (tmp_path / "quick.html").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["audit"], "no folder to audit"),
    (["audit", "DIR", "--image-size", "5"], "--image-size"),
    (["audit", "DIR", "--folds", "1"], "--folds"),
    (["audit", "DIR", "--from-model", "m.pth", "--arch", "resnet34"], "--arch: --from-model judges"),
    (["audit", "DIR", "--from-model", "nothing.pth"], "nothing.split.json is missing"),
    (["fix", "DIR"], "DIR.suspects.csv does not exist"),
    (["undo", "nothing.json"], "not an undo file"),
    (["tag", "DIR", "--add", "x", "--arch", "resnet18"], "unrecognized arguments: --arch resnet18"),
])
def test_audit_fix_and_undo_name_the_setting_that_is_wrong(tmp_path, arguments, message):
    folder = tmp_path / "DIR"
    save_image(folder / "a.png")
    (folder / "a.png.txt").write_text("cat\n")
    result = run_main("prepare.py", *arguments, cwd=tmp_path, env={"TRAINING": ""}, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert (folder / "a.png.txt").read_text() == "cat\n"


def test_fix_and_undo_from_the_command_line(tmp_path):
    folder = tmp_path / "photos"
    save_image(folder / "a.png")
    (folder / "a.png.txt").write_text("cat\nsky\n")
    (tmp_path / "photos.suspects.csv").write_text("image,tag,kind,given,probability,score,accept\n"
                                                  "a.png,sky,extra,1,0.02,0.98,yes\na.png,dog,missing,0,0.9,0.9,\n")
    result = run_main("prepare.py", "fix", folder, cwd=tmp_path)
    assert (folder / "a.png.txt").read_text() == "cat\n"
    undo_file = re.search(r"undo file: (\S+)", result.stdout).group(1)
    run_main("prepare.py", "undo", undo_file, cwd=tmp_path)
    assert (folder / "a.png.txt").read_text() == "cat\nsky\n"


def test_duplicates_writes_the_groups_and_a_page_that_shows_where_their_tags_differ(tmp_path):
    from conftest import changed_copies, distinct_photos
    from test_pages import page_data

    folder = tmp_path / "photos"
    folder.mkdir()
    photos = distinct_photos()
    for name in ("china_left", "flower_left", "flower_right"):
        photos[name].save(folder / f"{name}.jpg")
        (folder / f"{name}.jpg.txt").write_text(f"{name.split('_')[0]}\noutdoors\n")
    changed_copies(photos["china_left"])["cropped"].save(folder / "repost.jpg")
    (folder / "repost.jpg.txt").write_text("china\n")  # lost a tag on the way
    changed_copies(photos["flower_left"])["framed"].save(folder / "framed.png")
    (folder / "framed.png.txt").write_text("outdoors\nflower\n")
    (folder / "flower copy.jpg").write_bytes((folder / "flower_left.jpg").read_bytes())  # no tag file
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    result = run_main("prepare.py", "duplicates", folder, cwd=tmp_path)
    with open(tmp_path / "photos.duplicates.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    groups = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row["image"])
    assert list(groups) == ["1", "2"]  # the group whose tags differ first
    assert sorted(groups["1"]) == ["china_left.jpg", "repost.jpg"]
    assert sorted(groups["2"]) == ["flower copy.jpg", "flower_left.jpg", "framed.png"]
    assert "2 groups of near-duplicates hold 5 of the 6 images" in result.stdout
    assert "1 of them disagree on tags" in result.stdout and "tags differ: outdoors" in result.stdout
    page = page_data((tmp_path / "photos.duplicates.html").read_text(encoding="utf-8"))
    assert page["kind"] == "review" and page["groups"][0]["differ"] == ["outdoors"]
    # to review: the group that disagrees, made to agree (one of two pictures says outdoors: a tie adds it)
    names = [image["name"] for image in page["images"]]
    assert [(item["tag"], item["kind"], [names[i] for i in item["targets"]]) for item in page["items"]] == [
        ("outdoors", "missing", ["repost.jpg"])]
    assert page["groups"][1]["differ"] == [] and None in page["groups"][1]["tags"]  # the copy without a tag file
    assert all(page["thumbs"][name].startswith("data:image/jpeg") for name in groups["1"] + groups["2"])
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # nothing in the folder changed
    checked = run_main("prepare.py", "check", folder, cwd=tmp_path).stdout
    assert "near-duplicates: 2 groups hold 5 images" in checked and "1 group(s) disagree on tags" in checked
    again = run_main("prepare.py", "duplicates", folder, "--output", tmp_path / "mine.csv", "--index-cache",
                     tmp_path / "photos.index", cwd=tmp_path)
    assert (tmp_path / "photos.index.fingerprints.npz").is_file() and (tmp_path / "mine.html").is_file()
    assert (tmp_path / "mine.csv").read_text() == (tmp_path / "photos.duplicates.csv").read_text()
    assert "wrote" in again.stdout
