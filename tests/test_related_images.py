"""Related images in a run: near-duplicates and pattern groups stay on one side of train.py's split,
the split file records the groups and --resume keeps them; with grouping off the run says how many
validation images have a near-duplicate in training; the audit's folds keep groups together."""

import json
import re
import shutil

import numpy as np
import pytest
from conftest import FAST_TRAINING, run_main
from PIL import Image, ImageEnhance
from test_pages import page_data

import common.training_loop
from common.checkpoint import load_checkpoint
from common.folder_scan import scan_folder


@pytest.fixture
def reposted(shapes_dataset, tmp_path):
    """The shapes pictures, each with a brightened, slightly larger copy under another name and the
    same tags; and two pages of one post (post7_p0.png, post7_p1.png), different pictures."""
    root, _ = shapes_dataset
    folder = tmp_path / "reposted"
    shutil.copytree(root / "train", folder)
    for number, image in enumerate(scan_folder(folder).images):
        with Image.open(image) as opened:
            copy = ImageEnhance.Brightness(opened.convert("RGB")).enhance(1.2).resize((80, 80), Image.LANCZOS)
        copy.save(folder / f"repost-{number:03d}.jpg", quality=85)
        (folder / f"repost-{number:03d}.jpg.txt").write_bytes((image.parent / f"{image.name}.txt").read_bytes())
    for page, seed in ((0, 1), (1, 2)):
        pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(folder / f"post7_p{page}.png")
        (folder / f"post7_p{page}.png.txt").write_text("square\n")
    return folder


def straddling(split):
    train, validation = set(split["train"]), set(split["validation"])
    return [group for group in split["groups"] if set(group) & train and set(group) & validation]


def test_near_duplicates_and_pattern_groups_stay_on_one_side_and_the_split_file_records_them(reposted, tmp_path):
    result = run_main("train.py", "--data", reposted, "--model", tmp_path / "m.pth", *FAST_TRAINING,
                      "--group-by", r"^post(\d+)_p", "--val-fraction", "0.2", cwd=tmp_path)
    found = re.search(r"^groups: (\d+) groups of related images hold (\d+) of (\d+) images", result.stdout, re.M)
    assert found and int(found[3]) == 98, result.stdout
    assert result.stdout.index("groups: ") < result.stdout.index("split: ") < result.stdout.index("epoch 1/1")
    split = json.loads((tmp_path / "m.split.json").read_text())
    assert len(split["groups"]) == int(found[1]) and sum(map(len, split["groups"])) == int(found[2])
    assert straddling(split) == [] and split["validation"]
    group_of = {name: number for number, group in enumerate(split["groups"]) for name in group}
    originals = sorted(path.name for path in scan_folder(reposted).images if path.name.startswith("shapes_"))
    together = [original in group_of and group_of[original] == group_of.get(f"repost-{number:03d}.jpg")
                for number, original in enumerate(originals)]
    # all but the few flat ones (a single filled square, once its background is trimmed, has no structure)
    assert sum(together) >= 0.85 * len(originals), [name for name, joined in zip(originals, together) if not joined]
    assert group_of["post7_p0.png"] == group_of["post7_p1.png"]
    assert load_checkpoint(tmp_path / "m.pth")["settings"]["group_by"] == r"^post(\d+)_p"
    report = (tmp_path / "m.report.html").read_text(encoding="utf-8")
    assert f"{len(split['groups'])} groups of related images" in page_data(report)["summary"]
    assert 'id="warning"' not in report


def test_with_grouping_off_the_run_and_its_report_say_how_many_validation_images_it_has_seen(reposted, tmp_path):
    result = run_main("train.py", "--data", reposted, "--model", tmp_path / "m.pth", *FAST_TRAINING,
                      "--group-duplicates", "off", "--val-fraction", "0.2", cwd=tmp_path)
    split = json.loads((tmp_path / "m.split.json").read_text())
    leaked = split["validation_images_with_a_near_duplicate_in_training"]
    assert 0 < leaked <= len(split["validation"]) and split["groups"] == []
    warning = f"warning: {leaked} of the {len(split['validation'])} validation images have a near-duplicate"
    assert result.stdout.count(warning) == 2, result.stdout  # after the split, and after the run's summary
    assert result.stdout.rindex(warning) > result.stdout.index("saved the model from epoch")
    report = (tmp_path / "m.report.html").read_text(encoding="utf-8")
    assert 'id="warning"' in report and warning.removeprefix("warning: ") in report


@pytest.mark.slow  # whole runs of a few seconds each: the fast tier keeps under 3 minutes
def test_resume_keeps_the_split_and_groups_of_the_interrupted_run(reposted, tmp_path, monkeypatch):
    model = tmp_path / "m.pth"
    run_epoch = common.training_loop.run_epoch

    def interrupted_in_the_second_epoch(run, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return run_epoch(run, epoch)

    monkeypatch.setattr(common.training_loop, "run_epoch", interrupted_in_the_second_epoch)
    stopped = run_main("train.py", "--data", reposted, "--model", model, *FAST_TRAINING, "--epochs", "2",
                       cwd=tmp_path, check=False)
    monkeypatch.undo()
    assert stopped.returncode == 130, stopped.stdout + stopped.stderr
    before = json.loads((tmp_path / "m.split.json").read_text())
    (tmp_path / "m.split.json").unlink()  # the resumed run writes it again, from the interrupted run's state
    resumed = run_main("train.py", "--resume", "--model", model, cwd=tmp_path)
    assert "groups: " not in resumed.stdout and "resuming after epoch 1" in resumed.stdout
    after = json.loads((tmp_path / "m.split.json").read_text())
    assert after == before and before["groups"]


def test_the_audits_folds_keep_each_group_of_related_images_in_one_fold(reposted, tmp_path):
    output = tmp_path / "suspects.csv"
    result = run_main("prepare.py", "audit", reposted, "--folds", "2", "--epochs", "1", "--keep-folds", "--output",
                      output, "--group-by", r"^post(\d+)_p", *FAST_TRAINING, cwd=tmp_path)
    assert re.search(r"^groups: \d+ groups of related images", result.stdout, re.M)
    names = sorted(path.name for path in scan_folder(reposted).images)
    fold_of = {}
    for fold in (1, 2):
        with np.load(tmp_path / "suspects.folds" / f"fold-{fold}-of-2.npz") as kept:
            fold_of |= {names[row]: fold for row in kept["rows"]}
    assert sorted(fold_of) == names
    assert fold_of["post7_p0.png"] == fold_of["post7_p1.png"]
    originals = [name for name in names if name.startswith("shapes_")]
    same_fold = [fold_of[original] == fold_of[f"repost-{number:03d}.jpg"] for number, original in enumerate(originals)]
    assert sum(same_fold) >= 0.85 * len(originals)  # the grouped ones, as in train.py's split
