"""prepare.py's subcommands: tag, folders, check and demo."""

import re

import pytest
from conftest import run_main, run_script, save_image

import prepare
from common.errors import UserError
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
