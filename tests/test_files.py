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


def test_a_write_past_the_file_size_limit_stops_the_script_with_one_line_and_keeps_the_old_file(tmp_path):
    """As on a full disk: a sidecar that would grow past `ulimit -f` is left as it was, no temporary
    file is left beside it, and prepare.py ends with one line naming the file and the cause."""
    import resource
    import subprocess
    import sys

    from conftest import CHILD_ENVIRONMENT, REPOSITORY, save_image

    save_image(tmp_path / "a.png")
    sidecar = tmp_path / "a.png.txt"
    sidecar.write_text("".join(f"tag{number:06}\n" for number in range(409)))  # 4,090 bytes
    before = sidecar.read_bytes()

    def limit_file_size():  # in the child only: files it writes may not pass 4,096 bytes
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = subprocess.run([sys.executable, str(REPOSITORY / "prepare.py"), "tag", str(tmp_path), "--add",
                             "one more tag that does not fit"], env=CHILD_ENVIRONMENT, capture_output=True, text=True,
                            preexec_fn=limit_file_size, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: could not write {sidecar}: the file would pass the file-size limit (ulimit -f). Nothing was "
        f"half-written: {sidecar} is as it was before. Make room, then run the same command again to carry on"]
    assert sidecar.read_bytes() == before and sorted(path.name for path in tmp_path.iterdir()) == ["a.png",
                                                                                                   "a.png.txt"]
