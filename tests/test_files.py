"""Files: an interrupted write leaves the old file, no temporary, and ordinary permissions; an output
folder is proven writable before any work."""

import pytest

from common.errors import UserError
from common.files import atomic_write, check_writable_folder


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.pth"
    target.write_bytes(b"good old model")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb") as file:
            file.write(b"half a new mod")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"good old model"
    assert [path.name for path in tmp_path.iterdir()] == ["model.pth"]


def test_atomic_writes_keep_ordinary_permissions(tmp_path):
    fresh = tmp_path / "fresh.txt"
    with atomic_write(fresh) as file:
        file.write("x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert fresh.stat().st_mode == plain.stat().st_mode  # not the private 0600 of a temporary file
    plain.chmod(0o640)
    with atomic_write(plain) as file:
        file.write("y")
    assert oct(plain.stat().st_mode & 0o777) == oct(0o640)  # a replaced file keeps its own


def test_a_folder_is_proven_writable_without_being_created_or_named_with_what_to_do(tmp_path):
    check_writable_folder(tmp_path / "new" / "deeper", "model")
    assert list(tmp_path.iterdir()) == []  # nothing made: a run that fails later leaves no empty folder
    (tmp_path / "a_file").write_text("in the way")
    with pytest.raises(UserError, match=r"cannot write the model to .*a_file is a file, not a folder"):
        check_writable_folder(tmp_path / "a_file" / "models", "model")
    assert (tmp_path / "a_file").read_text() == "in the way"


def test_an_atomic_write_makes_its_folder_when_it_has_something_to_put_in_it(tmp_path):
    with atomic_write(tmp_path / "new" / "deeper" / "m.txt") as file:
        file.write("x")
    assert (tmp_path / "new" / "deeper" / "m.txt").read_text() == "x"
