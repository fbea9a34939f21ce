"""The page builder (common/pages.py), without a browser: what goes into a page, that it needs
nothing from outside itself, and that it stays a sensible size. The pages are opened in a real
browser by tests/test_browser.py (slow tier)."""

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from common import pages
from common.pages import (PR_POINTS, ValidationShown, contact_sheet_data, duplicates_data, line_chart, render_page,
                          report_data, thumbnail_uri, worst_images, write_page)
from conftest import colourful, save_image


def page_data(page):
    """The JSON a page carries, as its script reads it."""
    found = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(found.group(1))


def assert_self_contained(page):
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)', page)  # no file, server or CDN is referenced
    assert "<link" not in page and "@import" not in page and not re.search(r"<script[^>]*\ssrc=", page)
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


def test_a_thumbnail_is_a_small_jpeg_and_an_unreadable_image_gets_none(tmp_path):
    picture = tmp_path / "big.png"
    colourful((640, 320)).save(picture)
    uri = thumbnail_uri(picture, size=96)
    assert uri.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert decoded.format == "JPEG" and decoded.size == (96, 48)  # the longer side, aspect kept
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    assert thumbnail_uri(tmp_path / "broken.jpg") is None


def test_worst_images_are_the_errors_most_wrong_first():
    targets = np.array([[1], [1], [0], [0], [0], [1]])
    probabilities = np.array([[0.9], [0.2], [0.7], [0.95], [0.1], [0.4]])
    worst = worst_images(targets, probabilities, thresholds=[0.5], per_tag=4)[0]
    assert worst["fp"] == [[3, 0.95], [2, 0.7]]  # absent but predicted, most confident first
    assert worst["fn"] == [[1, 0.2], [5, 0.4]]  # present but missed, least probable first


def test_the_report_carries_its_table_curves_errors_and_links_and_nothing_from_outside(tmp_path):
    rng = np.random.default_rng(0)
    images = [save_image(tmp_path / f"v{i}.png", colour=tuple(int(c) for c in rng.integers(0, 255, 3)))
              for i in range(30)]
    names = [image.name for image in images]
    targets = (rng.random((30, 3)) < 0.4).astype(float)
    # absent tags up to 0.7 and present ones from 0.4: both kinds of mistake at the 0.5 thresholds
    probabilities = np.clip(targets * 0.4 + rng.random((30, 3)) * 0.7, 0, 1)
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "mAP": 0.5 + e / 20} for e in range(1, 5)]
    table = [{"tag": tag, "support": int(targets[:, i].sum()), "ap": 0.7, "precision": float("nan"), "recall": 0.5,
              "f1": 0.5, "threshold": 0.5} for i, tag in enumerate(["cat", "dog</script>", "sky"])]
    links = [("m.suspects.html", "the validation labels this model doubts", "(a quick look)")]
    data = report_data("m.pth: training report", history, ["cat", "dog</script>", "sky"],
                       ValidationShown(names, images, targets, probabilities, [0.5, 0.5, 0.5], table),
                       links, summary="summary")
    size = write_page(tmp_path / "m.report.html", data)
    page = (tmp_path / "m.report.html").read_text(encoding="utf-8")
    assert size == len(page.encode())
    assert_self_contained(page)
    shown = page_data(page)  # a tag holding "</script>" does not end the script early
    assert shown["tags"][1] == "dog</script>" and shown["table"][0]["precision"] is None
    assert shown["links"] == [{"href": "m.suspects.html", "text": "the validation labels this model doubts",
                               "note": "(a quick look)"}]
    assert page.count("<svg") >= 2 and "validation mAP" in page  # the curves, drawn without a script
    assert any(worst["fp"] for worst in shown["worst"]) and any(worst["fn"] for worst in shown["worst"])
    for tag, worst in enumerate(shown["worst"]):
        for row, probability in worst["fp"]:
            assert targets[row, tag] == 0 and probability >= 0.5
            assert shown["thumbs"][names[row]].startswith("data:image/jpeg")
        for row, probability in worst["fn"]:
            assert targets[row, tag] == 1 and probability < 0.5
            assert shown["thumbs"][names[row]].startswith("data:image/jpeg")
    assert all(curve is None or len(curve[0]) <= PR_POINTS for curve in shown["pr"])


def test_a_report_for_hundreds_of_tags_stays_a_sensible_size(tmp_path):
    rng = np.random.default_rng(1)
    images = []
    for i in range(400):
        path = tmp_path / f"img{i}.jpg"
        colourful((160, 120), seed=i).save(path, quality=90)
        images.append(path)
    tags = [f"tag{j}" for j in range(300)]
    targets = (rng.random((400, 300)) < 0.03).astype(float)
    probabilities = rng.random((400, 300)) * 0.6
    table = [{"tag": tag, "support": 1, "ap": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "threshold": 0.5}
             for tag in tags]
    history = [{"epoch": 1, "train_loss": 1.0}]
    data = report_data("big", history, tags,
                       ValidationShown([p.name for p in images], images, targets, probabilities, [0.5] * 300, table))
    size = write_page(tmp_path / "big.html", data)
    assert size < 6_000_000  # every image thumbnailed once however many tags show it


def test_the_contact_sheet_carries_its_thumbnails(tmp_path):
    folder = tmp_path / "photos"
    first, second = save_image(folder / "a.png"), save_image(folder / "b b.png", colour=(0, 0, 255))
    sheet = contact_sheet_data("photos", [("a.png", first, {"cat": 0.91}, ["cat", 0.91, 0.41]),
                                          ("b b.png", second, {}, ["dog", 0.45, 0.05])])
    page = render_page(sheet)
    assert_self_contained(page)
    images = page_data(page)["images"]
    assert [image["name"] for image in images] == ["a.png", "b b.png"] and images[1]["doubt"] == ["dog", 0.45, 0.05]
    assert all(image["thumb"].startswith("data:image/jpeg") for image in images)


@pytest.mark.parametrize("values", [[1.0, 1.0, 1.0], [float("nan"), 0.5, None], []])
def test_charts_draw_flat_gappy_and_empty_series(values):
    svg = line_chart([("loss", list(range(len(values))), values, "#000")], "loss", "epoch")
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "nan" not in svg.lower()


@pytest.mark.timeout(60)
def test_a_page_of_duplicates_stays_small_however_large_the_groups(tmp_path, monkeypatch):
    # crops of one picture, or a burst of shots, can make one group of thousands: its first pictures
    # are shown, the count says how many there are, and the page holds a bounded number of thumbnails
    monkeypatch.setattr(pages, "DUPLICATE_PICTURES_SHOWN", 12)
    monkeypatch.setattr(pages, "DUPLICATE_PICTURES_PER_GROUP", 5)
    names = [f"shot{number:02d}.png" for number in range(24)]
    for number, name in enumerate(names):
        colourful((40, 32), seed=number).save(tmp_path / name)
    groups = [(names[:14], [["cat"]] * 14, [], False), (names[14:16], [["cat"], ["dog"]], ["cat", "dog"], False),
              (names[16:22], [["a"]] * 6, [], False), (names[22:], [[], []], [], True)]
    data = duplicates_data("bursts", groups, tmp_path)
    assert [len(group["images"]) for group in data["groups"]] == [5, 2, 5]  # 12 in all: the fourth group waits
    assert [group["more"] for group in data["groups"]] == [9, 0, 1]
    assert data["found"] == 4 and len(data["thumbs"]) == 12 and all(data["thumbs"].values())
    assert [len(group["tags"]) for group in data["groups"]] == [5, 2, 5]
    assert len(render_page(data)) < 12 * 6000 + 60_000
