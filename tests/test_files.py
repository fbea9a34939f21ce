"""Files: an interrupted write leaves the old file, no temporary, and ordinary permissions; an output
folder is proven writable before any work; what a killed run left is cleared by the next; one run
at a time holds a lock, which a killed run does not keep."""

import contextlib
import os
import signal
import subprocess
import sys

import pytest

from common.errors import UserError
from common.files import atomic_write, check_writable_folder, keep_a_copy, remove_leftover_temporaries, run_lock


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


@pytest.mark.slow  # starts a script under a limit or a signal: in the slow tier
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


def test_the_temporaries_a_killed_write_left_are_removed_for_the_named_files_only(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):  # an atomic write's temporary, as kill -9 would leave it
        with atomic_write(tmp_path / "a.png.txt") as file:
            file.write("cut off")
            leftover = next(tmp_path.glob(".a.png.txt.*.tmp"))
            os.link(leftover, tmp_path / "kept-by-the-test")
            raise KeyboardInterrupt
    os.replace(tmp_path / "kept-by-the-test", leftover)
    others = [tmp_path / ".b.png.txt.abcd1234.tmp", tmp_path / "a.png.txt.abcd1234.tmp", tmp_path / ".a.png.txt.tmp"]
    for path in others:  # another file's temporary, and names that are not temporaries of ours
        path.write_text("not ours to remove")
    assert remove_leftover_temporaries([tmp_path / "a.png.txt", tmp_path / "missing" / "x.txt"]) == 1
    assert not leftover.exists() and all(path.read_text() == "not ours to remove" for path in others)
    assert "removed 1 unfinished temporary file(s) left by an interrupted run" in capsys.readouterr().out


def test_a_copy_is_kept_while_the_original_stays_whole_in_place(tmp_path):
    model, copy = tmp_path / "m.pth", tmp_path / "m.previous.pth"
    model.write_bytes(b"the user's model")
    copy.write_bytes(b"an older copy")
    for _ in range(2):  # the second time as the run after one killed before replacing the model would
        keep_a_copy(model, copy)
        assert model.read_bytes() == copy.read_bytes() == b"the user's model"
        assert sorted(path.name for path in tmp_path.iterdir()) == ["m.previous.pth", "m.pth"]


HOLD_THE_LOCK = """
import sys, time
from common.files import run_lock
with run_lock(sys.argv[1], "tagging the folder", "wait for it"):
    print("holding", flush=True)
    time.sleep(60)
"""


@contextlib.contextmanager
def lock_holder(script, lock, first_line):
    """Another process running `script` on `lock`, once it has printed `first_line`; killed at the end."""
    from conftest import CHILD_ENVIRONMENT, REPOSITORY

    holder = subprocess.Popen([sys.executable, "-c", script, str(lock)], cwd=REPOSITORY, text=True,
                              env=CHILD_ENVIRONMENT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert holder.stdout.readline() == first_line
        yield holder
    finally:
        holder.kill()
        holder.wait()


def refusal(lock, what):
    """The one line run_lock stops with while another process holds `lock`."""
    with pytest.raises(UserError) as refused:
        with run_lock(lock, what, "wait for it"):
            pass
    return str(refused.value)


def test_a_second_run_is_refused_in_one_line_and_a_killed_run_leaves_no_lock_behind(tmp_path):
    lock = tmp_path / ".run.lock"
    with lock_holder(HOLD_THE_LOCK, lock, "holding\n") as holder:
        expected = f"another run (process {holder.pid}) is tagging the folder: wait for it"
        assert refusal(lock, "tagging the folder") == expected
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert lock.exists()  # a killed run cannot remove its file, but its lock ended with it
        with run_lock(lock, "tagging the folder", "wait for it"):
            assert lock.read_text() == f"{os.getpid()}\n"
        assert not lock.exists()


LOCK_THEN_WRITE_THE_ID_LATER = """
import fcntl, os, sys, time
handle = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
time.sleep(0.3)  # the moment between a run's lock and its process id, stretched
os.write(handle, f"{os.getpid()}\\n".encode())
time.sleep(60)
"""


def test_a_run_refused_in_the_instant_the_other_took_the_lock_still_names_that_run(tmp_path):
    lock = tmp_path / ".run.lock"
    with lock_holder(LOCK_THEN_WRITE_THE_ID_LATER, lock, "locked\n") as holder:
        assert refusal(lock, "training m.pth") == f"another run (process {holder.pid}) is training m.pth: wait for it"


def test_a_lock_beside_a_model_makes_its_folder_and_removes_it_again_if_nothing_was_written(tmp_path):
    lock = tmp_path / "models" / "new" / ".m.pth.lock"
    with run_lock(lock, "training m.pth", "wait", make_folder=True):
        assert lock.exists()
    assert list(tmp_path.iterdir()) == []
    with run_lock(lock, "training m.pth", "wait", make_folder=True):
        (lock.parent / "m.pth").write_bytes(b"a model")
    assert [path.name for path in lock.parent.iterdir()] == ["m.pth"]
    with run_lock(tmp_path / "not made" / ".lock", "tagging", "wait"):  # no folder, not asked to make one: no lock
        assert list(tmp_path.iterdir()) == [tmp_path / "models"]


@pytest.mark.slow  # starts a script under a limit or a signal: in the slow tier
def test_torch_save_past_the_file_size_limit_is_one_line_and_keeps_the_old_model(tmp_path):
    """torch.save turns the failed write into a RuntimeError of its own; the message still says why."""
    import resource

    from conftest import CHILD_ENVIRONMENT, REPOSITORY

    model = tmp_path / "m.pth"
    model.write_bytes(b"the previous model")
    code = ("import sys, torch\nfrom common.checkpoint import save_checkpoint\nfrom common.errors import UserError\n"
            "try:\n    save_checkpoint({'weights': torch.zeros(100_000)}, sys.argv[1])\n"
            "except UserError as error:\n    print(error)")

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = subprocess.run([sys.executable, "-c", code, str(model)], cwd=REPOSITORY, env=CHILD_ENVIRONMENT,
                            capture_output=True, text=True, preexec_fn=limit_file_size, timeout=60)
    assert result.stdout.startswith(f"could not write {model}: the file would pass the file-size limit (ulimit -f)")
    assert model.read_bytes() == b"the previous model" and [path.name for path in tmp_path.iterdir()] == ["m.pth"]
