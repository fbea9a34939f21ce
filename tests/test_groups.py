"""Related images: groups from near-duplicates, a file-name pattern and a group file, joined where they
overlap; each setting checked with a clear message; and the count of near-duplicates a split cuts."""

from types import SimpleNamespace

import pytest
from conftest import changed_copies, distinct_photos, run_main
from PIL import Image

from common.errors import UserError
from common.groups import (check_group_settings, compile_group_pattern, group_names_by_pattern, read_group_file,
                           related_images, write_group_file)


def settings(folder, **values):
    return SimpleNamespace(**{"data": str(folder), "group_by": "", "groups": "", "group_duplicates": "on",
                              "workers": 0, "index_cache": "", **values})


@pytest.fixture
def posts(tmp_path):
    """Multi-page posts (123_p0.jpg, 123_p1.jpg), a photo with a resized copy, and pictures alone."""
    folder = tmp_path / "posts"
    folder.mkdir()
    photos = distinct_photos()
    photos["china_left"].save(folder / "100_p0.jpg")
    photos["china_right"].save(folder / "100_p1.jpg")
    photos["flower_left"].save(folder / "200_p0.jpg")
    changed_copies(photos["flower_left"])["resized"].save(folder / "repost.jpg")
    photos["flower_right"].save(folder / "300_p0.jpg")
    Image.new("RGB", (64, 64), (250, 0, 0)).save(folder / "red.png")
    return folder, sorted(path for path in folder.iterdir())


def names_in_groups(found, paths):
    return sorted(sorted(paths[row].name for row in group) for group in found.groups)


def test_the_first_capture_group_or_the_whole_match_names_a_group():
    names = ["100_p0.jpg", "100_p1.jpg", "200_p0.jpg", "cover.jpg"]
    assert group_names_by_pattern(names, compile_group_pattern(r"^(\d+)_p\d+")) == ({"100": [0, 1], "200": [2]}, [3])
    assert group_names_by_pattern(names, compile_group_pattern(r"^\d+"))[0] == {"100": [0, 1], "200": [2]}


def test_pattern_file_and_near_duplicates_are_joined_where_they_overlap(posts, tmp_path, capsys):
    folder, paths = posts
    found = related_images(settings(folder), paths)
    assert names_in_groups(found, paths) == [["200_p0.jpg", "repost.jpg"]]
    found = related_images(settings(folder, group_by=r"^(\d+)_p"), paths)
    assert names_in_groups(found, paths) == [["100_p0.jpg", "100_p1.jpg"], ["200_p0.jpg", "repost.jpg"]]
    listed = tmp_path / "mine.csv"
    write_group_file(listed, [("a", ["300_p0.jpg", "red.png"]), ("b", ["repost.jpg", "100_p1.jpg", "gone.jpg"])])
    found = related_images(settings(folder, group_by=r"^(\d+)_p", groups=str(listed)), paths)
    assert names_in_groups(found, paths) == [["100_p0.jpg", "100_p1.jpg", "200_p0.jpg", "repost.jpg"],
                                             ["300_p0.jpg", "red.png"]]
    assert len(set(found.group_of.tolist())) == 2
    printed = capsys.readouterr().out
    assert "1 image(s) listed in" in printed and "gone.jpg" in printed  # a listed image that is not there
    assert "matches nothing in 2 image name(s)" in printed  # repost.jpg and red.png


def test_with_duplicates_not_grouped_the_pairs_a_split_cuts_are_counted(posts):
    folder, paths = posts
    found = related_images(settings(folder, group_duplicates="off"), paths)
    assert found.groups == [] and len(set(found.group_of.tolist())) == len(paths)
    flower, repost = paths.index(folder / "200_p0.jpg"), paths.index(folder / "repost.jpg")
    assert found.leaked_count([repost]) == 1 and found.leaked_count([flower]) == 1
    assert found.leaked_count([flower, repost]) == 0 and found.leaked_count([0]) == 0


def test_a_pattern_that_matches_nothing_is_named(posts):
    folder, paths = posts
    with pytest.raises(UserError, match="matches none of the 6 image names"):
        related_images(settings(folder, group_by=r"^page-(\d+)"), paths)


@pytest.mark.parametrize("values, message", [
    ({"group_by": "(unclosed"}, "--group-by '(unclosed' is not a regular expression"),
    ({"groups": "missing.csv"}, "--groups missing.csv does not exist"),
    ({"groups": "."}, "is a folder"),
    ({"groups": "notes.csv"}, "has no group or image column"),
])
def test_each_group_setting_is_checked_with_a_message_that_names_it(values, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.csv").write_text("just some text\nand more\n")
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(".", r"\.")):
        check_group_settings(SimpleNamespace(**{"group_by": "", "groups": "", **values}))


def test_a_bad_pattern_is_named_before_the_weights_are_fetched(tmp_path):
    # the ImageNet weights (the default) may need a download: a typo in a pattern is reported first
    (tmp_path / "photos").mkdir()
    result = run_main("train.py", "--data", tmp_path / "photos", "--model", tmp_path / "m.pth", "--group-by", "(",
                      cwd=tmp_path, check=False)
    assert result.returncode != 0 and "--group-by '(' is not a regular expression" in result.stderr + result.stdout
    assert not (tmp_path / "m.pth").exists()


def test_a_group_file_written_by_one_run_is_read_by_the_next(tmp_path):
    path = tmp_path / "groups.csv"
    write_group_file(path, [("1", ["a.jpg", "b, c.jpg"]), ("2", ["d.jpg"])])
    assert path.read_text().splitlines()[0] == "group,image"
    assert read_group_file(path) == [("1", "a.jpg"), ("1", "b, c.jpg"), ("2", "d.jpg")]
