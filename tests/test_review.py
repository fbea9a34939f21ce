"""The review page's data (common/review.py), without a browser: which changes each source
suggests, in which order, and how the page refers to the pictures. tests/test_browser.py drives the
page itself with the keyboard (slow tier)."""

from pathlib import Path

import numpy as np
import pytest

from common.review import duplicate_items, review_data, suggested_changes, suggestion_items, suspect_items, sureness
from conftest import save_image

pytestmark = pytest.mark.timeout(60)


def test_a_model_suggests_the_tags_above_their_thresholds_it_lacks_and_doubts_those_below():
    vocabulary = ["cat", "dog", "sky", "tree", "car"]
    probabilities = np.array([0.9, 0.2, 0.35, 0.05, 0.99])
    thresholds = np.array([0.5, 0.5, 0.3, 0.5, 0.5])
    usable = np.array([True, True, True, True, False])  # car is not allowed (a whitelist), so never suggested
    changes = suggested_changes(probabilities, thresholds, usable, vocabulary, current=["dog", "tree", "own tag"])
    assert [(tag, kind) for tag, kind, _, _ in changes] == [("tree", "extra"), ("cat", "missing"), ("dog", "extra"),
                                                           ("sky", "missing")]  # surest first; "own tag" is unknown
    assert [p for _, _, p, _ in changes] == [0.05, 0.9, 0.2, 0.35]
    # sureness is measured in logits from each tag's own threshold: 0.05 is further below 0.5 than 0.9 is above
    assert changes[3][3] == pytest.approx(sureness(0.35, 0.3)) and sureness(0.9, 0.5) < sureness(0.05, 0.5)
    assert sureness(0.5, 0.5) == 0 and sureness(1.0, 0.5) > 10  # a certain 1.0 stays finite


def test_suggestions_are_ranked_by_how_well_they_fit_the_folders_own_labels():
    # cat: the model agrees with the folder, and one picture lost its tag; dog: the model sees a dog
    # everywhere with 0.9, on a folder where nothing is tagged dog: its own, miscalibrated sureness
    # would put forty "add dog" first; judged with the folder's labels they go last
    rng = np.random.default_rng(0)
    vocabulary, reviewed = ["cat", "dog"], []
    for number in range(40):
        has_cat = number % 2 == 0
        p_cat = 0.97 if number == 7 else (0.8 + 0.15 * rng.random() if has_cat else 0.2 * rng.random())
        reviewed.append((f"{number:02d}.png", ["cat"] if has_cat else [], np.array([p_cat, 0.9])))
    reviewed.append(("unreadable.png", ["cat"], np.array([np.nan, np.nan])))
    items = suggestion_items(reviewed, np.array([0.5, 0.5]), np.array([True, True]), vocabulary)
    assert (items[0]["targets"], items[0]["tag"], items[0]["kind"]) == (["07.png"], "cat", "missing")
    assert items[0]["p"] == 0.97 and items[0]["score"] > 0.5
    assert [item["tag"] for item in items[1:]] == ["dog"] * 40 and all(item["score"] < 0.2 for item in items[1:])
    assert [item["score"] for item in items] == sorted((item["score"] for item in items), reverse=True)
    # too few images to judge in context: the model's own probabilities rank them
    few = suggestion_items(reviewed[:3], np.array([0.5, 0.5]), np.array([True, True]), vocabulary)
    assert [item["score"] for item in few] == [0.9] * 3


def test_the_audits_rows_become_items_in_their_order():
    rows = [{"image": "a.png", "tag": "cat", "kind": "missing", "given": "0", "probability": "0.93", "score": "0.93"},
            {"image": "b.png", "tag": "dog", "kind": "extra", "given": "1", "probability": "0.02", "score": ""}]
    assert suspect_items(rows) == [{"targets": ["a.png"], "tag": "cat", "kind": "missing", "p": 0.93, "score": 0.93},
                                   {"targets": ["b.png"], "tag": "dog", "kind": "extra", "p": 0.02, "score": None}]


def test_a_duplicate_group_is_made_to_agree_by_its_majority():
    groups = [(["a.png", "b.png", "c.png"], [["cat", "sky"], ["cat"], ["cat", "sky"]], ["sky"], False),
              (["d.png", "e.png", "f.png"], [["dog", "red"], ["dog"], None], ["dog", "red"], False),
              (["g.png", "h.png"], [["x"], ["x"]], [], True)]
    items = duplicate_items(groups)
    assert [(item["tag"], item["kind"], item["targets"]) for item in items] == [
        ("sky", "missing", ["b.png"]),  # two of three have it: add it to the third
        ("dog", "missing", ["f.png"]),  # the picture without a tag file gets one
        ("red", "extra", ["d.png"])]  # one of three has it: take it off
    assert items[0]["shown"] == ["a.png", "b.png", "c.png"] and items[0]["note"] == "on 2 of the group's 3 pictures"


def test_the_page_refers_to_the_pictures_beside_it_and_reads_their_tags(tmp_path):
    folder = tmp_path / "my photos"
    save_image(folder / "a b.png")
    save_image(folder / "sub" / "c.png")
    (folder / "a b.png.txt").write_text("cat\nsky\n")
    (folder / "sub" / "c.txt").write_text("dog, tree")  # the kohya style, comma-separated
    items = [{"targets": ["sub/c.png"], "tag": "cat", "kind": "missing", "p": 0.8, "score": 1.2},
             {"targets": ["a b.png"], "tag": "sky", "kind": "extra", "p": 0.1, "score": 0.9}]
    page = tmp_path / "pages" / "review.html"
    data = review_data("title", "summary", "suggestions", folder, page, items, ["sky", "cat", "dog"])
    assert [image["name"] for image in data["images"]] == ["sub/c.png", "a b.png"]
    assert [image["tags"] for image in data["images"]] == [["dog", "tree"], ["cat", "sky"]]
    assert data["images"][1]["src"] == "../my%20photos/a%20b.png"  # relative to the page, quoted for a URL
    assert [item["targets"] for item in data["items"]] == [[0], [1]]
    assert data["vocabulary"] == ["cat", "dog", "sky"] and data["export_name"] == "my photos.suggestions.csv"
    assert data["store_key"] == str(page.resolve()) and Path(data["store_key"]).name == "review.html"


def test_in_a_notebook_a_review_page_carries_its_pictures_inside(tmp_path):
    from common.pages import render_page, with_pictures_inside
    from test_pages import assert_self_contained, page_data

    folder = tmp_path / "photos"
    save_image(folder / "a b.png", size=(600, 400))
    (folder / "a b.png.txt").write_text("cat\n")
    items = [{"targets": ["a b.png"], "tag": "cat</script>", "kind": "extra", "p": 0.1, "score": 2.0}]
    page = render_page(review_data("t", "s", "suggestions", folder, tmp_path / "review.html", items, ["cat"]))
    inside = with_pictures_inside(page, tmp_path)
    assert_self_contained(inside)  # the iframe of a notebook cannot follow the paths
    data = page_data(inside)
    assert data["images"][0]["src"].startswith("data:image/jpeg") and data["items"][0]["tag"] == "cat</script>"
    assert {key: value for key, value in data.items() if key != "images"} == \
        {key: value for key, value in page_data(page).items() if key != "images"}
