"""The label audit (common/audit.py, common/suspects.py): folds, out-of-fold training, the ranking, and applying and
undoing the fixes a person accepted, on real tag files."""

import csv
import json

import numpy as np
import pytest

from common.errors import UserError
from common.suspects import (apply_fixes, confident_learning_issues, rank_suspects, read_accepted,
                             suspect_rows, undo_fixes, write_suspects)
from common.tagfiles import read_tag_file
from conftest import save_image


def noisy_labels(images=400, tags=6, flipped=12, seed=0):
    """True labels, probabilities from a good model of them, and labels with `flipped` pairs wrong."""
    rng = np.random.default_rng(seed)
    truth = rng.random((images, tags)) < 0.3
    probabilities = np.clip(np.where(truth, 0.85, 0.1) + rng.normal(0, 0.08, truth.shape), 0.001, 0.999)
    given = truth.copy()
    rows = rng.choice(images, flipped, replace=False)
    columns = rng.integers(0, tags, flipped)
    given[rows, columns] = ~given[rows, columns]
    return given, probabilities, set(zip(rows.tolist(), columns.tolist()))


@pytest.mark.parametrize("method", ["context", "cleanlab", "confidence"])
def test_flipped_labels_rank_first_with_their_kind(method):
    given, probabilities, flipped = noisy_labels()
    images, tags, scores, flagged, judged = rank_suspects(given, probabilities, method)
    assert len(images) == given.size  # every pair, once
    top = set(zip(images[:len(flipped)].tolist(), tags[:len(flipped)].tolist()))
    assert len(top & flipped) >= 0.9 * len(flipped)
    if method != "cleanlab":
        assert np.all(np.diff(scores) <= 0) and not flagged.any()
        assert np.allclose(scores, np.where(given[images, tags], 1 - judged, judged))
    else:  # cleanlab's verdicts first, each part by score
        assert flagged[:flagged.sum()].all() and not flagged[flagged.sum():].any()
        assert np.all(np.diff(scores[:flagged.sum()]) <= 0)
    rows = suspect_rows([f"img{i}.jpg" for i in range(len(given))], [f"t{j}" for j in range(given.shape[1])],
                        given, probabilities, method, limit=5)
    assert len(rows) == 5
    for row in rows:
        image, tag = int(row["image"][3:-4]), int(row["tag"][1:])
        assert row["given"] == int(given[image, tag])
        assert row["kind"] == ("extra" if given[image, tag] else "missing")
        if method != "context":  # which judges with the image's other tags too
            assert row["probability"] == pytest.approx(probabilities[image, tag], abs=1e-4)


def test_unreadable_images_and_uninformative_tags_are_left_out():
    given, probabilities, _ = noisy_labels(images=50, tags=3)
    given[:, 2] = True  # every image carries it: no evidence either way
    probabilities = probabilities.astype(np.float32)
    probabilities[7] = np.nan  # an image no model could read
    for method in ("context", "cleanlab"):
        images, *_ = rank_suspects(given, probabilities, method)
        assert 7 not in images.tolist() and len(images) == 49 * 3
    assert not confident_learning_issues(given, np.nan_to_num(probabilities))[:, 2].any()


def test_context_lets_tags_that_go_together_speak_for_each_other():
    """"dog" always comes with "animal" here; an image tagged dog but not animal is a missing
    animal even when the model, which cannot see animals well, gives it a middling probability."""
    rng = np.random.default_rng(2)
    dog = rng.random(600) < 0.4
    given = np.stack([dog, dog | (rng.random(600) < 0.1)], axis=1)
    probabilities = np.clip(np.stack([np.where(dog, 0.8, 0.2), np.full(600, 0.5)], axis=1)
                            + rng.normal(0, 0.05, (600, 2)), 0.01, 0.99)
    victim = int(np.flatnonzero(dog)[0])
    given[victim, 1] = False
    images, tags, *_ = rank_suspects(given, probabilities, "context")
    assert (images[0], tags[0]) == (victim, 1)
    images, tags, *_ = rank_suspects(given, probabilities, "confidence")
    assert (victim, 1) not in set(zip(images[:20].tolist(), tags[:20].tolist()))  # the model alone misses it


def test_an_unknown_method_is_named():
    with pytest.raises(UserError, match="unknown ranking method 'magic'"):
        rank_suspects(np.zeros((4, 2)), np.zeros((4, 2)), "magic")


# ----------------------------------------------------------------------------- fixes on real files
@pytest.fixture
def tagged_folder(tmp_path):
    folder = tmp_path / "photos"
    for name in ("a.jpg", "b.png", "c.jpg"):
        save_image(folder / name)
    (folder / "a.jpg.txt").write_text("cat\nindoor\n", encoding="utf-8")
    (folder / "b.txt").write_text("dog, outdoor", encoding="utf-8")  # kohya style: one comma-separated line
    (folder / "c.jpg.txt").write_text("", encoding="utf-8")
    return folder


def suspects_csv(path, rows):
    write_suspects(path, [{"image": image, "tag": tag, "kind": kind, "given": int(kind == "extra"),
                           "probability": 0.5, "score": 0.5, "accept": accept} for image, tag, kind, accept in rows])
    return path


def test_only_the_marked_fixes_are_applied_each_file_keeping_its_style(tagged_folder, tmp_path):
    before = {path.name: path.read_bytes() for path in tagged_folder.glob("*.txt")}
    suspects = suspects_csv(tmp_path / "photos.suspects.csv", [
        ("a.jpg", "indoor", "extra", "yes"), ("a.jpg", "sofa", "missing", ""), ("b.png", "cat", "missing", "X"),
        ("b.png", "outdoor", "extra", "no"), ("c.jpg", "cat", "missing", "")])
    changes, undo_path = apply_fixes(tagged_folder, suspects)
    assert read_tag_file(tagged_folder / "a.jpg.txt") == ["cat"]
    assert (tagged_folder / "a.jpg.txt").read_text() == "cat\n"
    assert (tagged_folder / "b.txt").read_text() == "dog, outdoor, cat"
    assert (tagged_folder / "c.jpg.txt").read_bytes() == before["c.jpg.txt"]  # not marked: untouched
    assert len(changes) == 2 and undo_path.parent == tmp_path and undo_path.name.startswith("photos.undo-")
    assert not list(tagged_folder.glob(".*tmp"))  # written atomically, nothing left over
    recorded = json.loads(undo_path.read_text())
    assert {change["before"] for change in recorded["changes"]} == {"cat\nindoor\n", "dog, outdoor"}

    _, again = apply_fixes(tagged_folder, suspects)  # applied already: nothing more to do, no new undo file
    assert again is None and (tagged_folder / "b.txt").read_text() == "dog, outdoor, cat"

    restored, changed_since = undo_fixes(undo_path)
    assert restored == 2 and not changed_since
    assert {path.name: path.read_bytes() for path in tagged_folder.glob("*.txt")} == before


def test_a_dry_run_changes_nothing(tagged_folder, tmp_path, capsys):
    before = {path.name: path.read_bytes() for path in tagged_folder.glob("*.txt")}
    suspects = suspects_csv(tmp_path / "s.csv", [("a.jpg", "cat", "extra", "yes")])
    changes, undo_path = apply_fixes(tagged_folder, suspects, dry_run=True)
    assert undo_path is None and changes[0]["after"] == "indoor\n"
    assert {path.name: path.read_bytes() for path in tagged_folder.glob("*.txt")} == before
    assert "would change 1 tag file(s)" in capsys.readouterr().out


def test_undo_leaves_a_file_that_changed_again_and_names_it(tagged_folder, tmp_path):
    suspects = suspects_csv(tmp_path / "s.csv", [("a.jpg", "indoor", "extra", "yes"), ("b.png", "dog", "extra", "y")])
    _, undo_path = apply_fixes(tagged_folder, suspects)
    (tagged_folder / "a.jpg.txt").write_text("cat\nedited by hand\n")
    restored, changed_since = undo_fixes(undo_path)
    assert restored == 1 and changed_since == [str(tagged_folder / "a.jpg.txt")]
    assert (tagged_folder / "a.jpg.txt").read_text() == "cat\nedited by hand\n"
    assert (tagged_folder / "b.txt").read_text() == "dog, outdoor"


def test_bad_suspect_files_are_named_with_what_to_do(tagged_folder, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_accepted(tmp_path / "nothing.csv")
    (tmp_path / "other.csv").write_text("file,cat\na.jpg,1\n")
    with pytest.raises(UserError, match="no image, tag, kind, accept column"):
        read_accepted(tmp_path / "other.csv")
    odd = suspects_csv(tmp_path / "odd.csv", [("a.jpg", "cat", "wrong", "yes")])
    with pytest.raises(UserError, match="line 2: kind must be missing or extra"):
        read_accepted(odd)
    unmarked = suspects_csv(tmp_path / "unmarked.csv", [("a.jpg", "cat", "extra", "")])
    with pytest.raises(UserError, match="no row of .* is marked"):
        apply_fixes(tagged_folder, unmarked)
    elsewhere = suspects_csv(tmp_path / "elsewhere.csv", [("../secret.jpg", "cat", "missing", "yes")])
    with pytest.raises(UserError, match="not an image in"):
        apply_fixes(tagged_folder, elsewhere)
    with pytest.raises(UserError, match="not an undo file"):
        undo_fixes(odd)


def test_a_csv_saved_by_a_spreadsheet_is_read(tagged_folder, tmp_path):
    """Excel saves UTF-8 with a byte-order mark and CRLF line ends, and may capitalise 'Yes'."""
    path = tmp_path / "excel.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(["image", "tag", "kind", "given", "probability", "score", "accept"])
        writer.writerow(["a.jpg", "indoor", "extra", 1, 0.1, 0.9, "Yes"])
    assert [row["tag"] for row in read_accepted(path)] == ["indoor"]
