"""Writing files so that a crash or Ctrl-C never leaves a half-written one behind."""

import contextlib
import csv
import errno
import math
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from pathlib import Path

from common.errors import UserError


def _new_file_mode():
    umask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8", newline=None):
    """Open a temporary file beside `path`; on success it replaces `path` in one step.

    Readers see either the old file or the complete new one, never a partial file, because
    os.replace within one folder is atomic. On an exception the temporary file is removed
    and `path` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # made only now, when there is something to put in it
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise no_room_error(path, error) or error
    writes = None
    try:
        # mkstemp makes private (0600) files; give the new file the old one's permissions, or the
        # ones any new file would get, so that sidecars stay readable by galleries and other users
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode) if path.exists() else NEW_FILE_MODE)
        text_options = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(handle, mode, **text_options) as file:
            writes = _WriteErrorsKept(file)
            yield writes
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        # torch.save reports a failed write as its own RuntimeError; the OSError behind it says why
        cause = error if isinstance(error, OSError) else writes and writes.error
        lack_of_room = no_room_error(path, cause) if cause else None
        if lack_of_room:
            raise lack_of_room from None
        raise


class _WriteErrorsKept:
    """A file whose failed writes are remembered, for writers that replace the OSError with their own."""

    def __init__(self, file):
        self._file, self.error = file, None

    def write(self, data):
        try:
            return self._file.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name):
        return getattr(self._file, name)


# Write failures that are no fault of the program: each stops a run with one line naming the file.
NO_ROOM = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EFBIG: "the file would pass the file-size limit (ulimit -f)"}


def no_room_error(path, error):
    """A UserError for a write that failed for lack of room, else None."""
    if error.errno not in NO_ROOM:
        return None
    return UserError(f"could not write {path}: {NO_ROOM[error.errno]}. Nothing was half-written: {path} is as it "
                     "was before. Make room, then run the same command again to carry on")


# The temporary a write killed mid-way leaves behind: ".TARGET.XXXXXXXX.tmp" (mkstemp's 8 random characters).
LEFTOVER_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def remove_leftover_temporaries(paths):
    """Delete the temporaries that writes to `paths`, cut short by kill -9 or a power cut, left
    beside them (a Ctrl-C or an error removes its own), and say how many there were. Call it only
    while holding the run lock (run_lock), when no other run can be writing them."""
    names_in = {}
    for path in map(Path, paths):
        names_in.setdefault(path.absolute().parent, set()).add(path.name)
    removed = 0
    for folder, names in names_in.items():
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder) as entries:
            for entry in entries:
                leftover = LEFTOVER_TEMPORARY.match(entry.name)
                if leftover and leftover["target"] in names and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
    if removed:
        print(f"removed {removed} unfinished temporary file(s) left by an interrupted run")
    return removed


@contextlib.contextmanager
def run_lock(lock_path, what, advice, make_folder=False):
    """Hold `lock_path` for the block, so that a second run writing the same files stops at once with
    one line (another run is `what`; `advice` says what to do) instead of racing this one.

    The lock is the operating system's (flock): it ends with the process however it ends, kill -9
    included, so a crashed run never blocks the next one. The lock file holds the owner's process
    id, for the message, and is removed at the end, with the folders make_folder made for it if
    they are still empty. Where locks do not work (Windows, some network file systems) or the file
    cannot be made (a read-only folder), the block runs unlocked."""
    lock_path = Path(lock_path).absolute()
    made = [folder for folder in lock_path.parents if not folder.exists()][::-1] if make_folder else []
    if made:
        with contextlib.suppress(OSError):
            lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = _lock(lock_path, what, advice)
    try:
        yield
    finally:
        if handle is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)  # while still locked, so that no run can lock the file being removed
            os.close(handle)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: the run wrote nothing there


TAG_FOLDER_LOCK = ".multitag-trainer.lock"


def tag_folder_lock(folder):
    """One run at a time writes tag files in a folder (see run_lock); the lock file lies in it."""
    return run_lock(Path(folder) / TAG_FOLDER_LOCK, f"writing tag files in {folder}",
                    "wait for it to end (or stop it), then run this command again to do what is left")


def _lock(lock_path, what, advice):
    """The open, locked lock file's descriptor, or None where locking is not possible."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    while True:
        try:
            handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, NEW_FILE_MODE)
        except OSError:
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _lock_owner(handle)
            os.close(handle)
            raise UserError(f"another run{f' (process {owner})' if owner else ''} is {what}: {advice}") from None
        except OSError:
            os.close(handle)
            return None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock_path).st_ino == os.fstat(handle).st_ino:
                with contextlib.suppress(OSError):  # the process id only makes the message clearer
                    os.ftruncate(handle, 0)
                    os.write(handle, f"{os.getpid()}\n".encode())
                return handle
        os.close(handle)  # the run before removed the file between our open and our lock: open it anew


def _lock_owner(handle):
    """The process id the lock's holder wrote in it, or "". A run that locked the file a moment ago
    writes its id right after, so a run started at the same instant waits a little for it."""
    deadline = time.monotonic() + 1
    while True:
        written = os.pread(handle, 100, 0).decode("ascii", "replace")
        if written.endswith("\n") or time.monotonic() > deadline:
            return written.strip()
        time.sleep(0.01)


def keep_a_copy(path, copy_path):
    """Make copy_path hold path's bytes (a hard link where the file system has them: instant and
    no extra space), while path stays in place until something atomically replaces it."""
    if copy_path.exists() and os.path.samefile(path, copy_path):  # kept by a run killed before replacing path
        return
    # named like atomic_write's temporaries, so that remove_leftover_temporaries clears one a kill left
    temporary = copy_path.with_name(f".{copy_path.name}.{os.getpid():08}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    try:
        os.link(path, temporary)
    except OSError:  # no hard links here (FAT, some network drives): copy
        copy_atomically(path, copy_path)
        return
    os.replace(temporary, copy_path)


def copy_atomically(source, target):
    """Copy a file's bytes and times to `target`, which is the old file or the whole copy, never half."""
    with atomic_write(target, "wb") as out, open(source, "rb") as file:
        shutil.copyfileobj(file, out)
    shutil.copystat(source, target)


@contextlib.contextmanager
def interrupts_deferred():
    """Hold back a Ctrl-C until the block is done, then raise it: for saving a model, which should
    finish once begun rather than be cut short and need saving again in a hurry."""
    if (threading.current_thread() is not threading.main_thread()  # only the main thread gets signals
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):  # already ignored (see below)
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def further_interrupts_ignored():
    """Ignore Ctrl-C (and torchrun's forwarded SIGINT or SIGTERM) for the block: for the last save
    before exiting after an interrupt, which a second signal must not cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def write_text_atomically(path, text):
    with atomic_write(path, "w") as file:
        file.write(text)


def check_output_file(path, what):
    """Prove that a file can be written at `path` (see check_writable_folder), and that `path` is not a
    folder, before any work starts."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, but the {what} is a file: give a file path, such as "
                        f"{path / ('tagger.pth' if what == 'model' else 'output' + (path.suffix or '.txt'))}")
    check_writable_folder(path.absolute().parent, what)


def check_writable_folder(folder, what):
    """Prove, before any long work starts, that `what` can be written in `folder`, without creating
    anything: the folder, or the nearest folder above it that exists (where it would be made),
    must take a file. Writing creates the folder later (atomic_write does)."""
    folder = Path(folder).absolute()
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        raise UserError(f"cannot write the {what} to {folder}: {existing} is a file, not a folder. Choose another "
                        "path.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UserError(f"cannot write the {what} to {folder}: {error.strerror or error} in {existing}. "
                        "Choose a folder you can write to.") from error


def load_torch_file(path, description):
    """torch.load with weights_only=True, so that a file from a stranger can never run code;
    every failure becomes a UserError that names the file and says what went wrong."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{description} {path} is a folder, not a file: give the path of the file itself")
    if not path.is_file():
        raise UserError(f"{description} {path} does not exist: check the path")
    import torch  # here, so that the text-only commands that write files never load it

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if "unsupported global" in str(error).lower():  # weights_only refused a class or function reference
            raise UserError(f"refused to load {description} {path}: it contains Python objects other than "
                            "tensors and plain data, and loading them could run code. Only use files from "
                            "sources you trust; multitag-trainer's own files never need this.") from error
        raise UserError(f"{description} {path} {_what_is_wrong_with(path)}") from error


def _what_is_wrong_with(path):
    """Why a file that torch.load refused is no model: PyTorch files start as a zip archive (or,
    from before 1.6, as a pickle); anything else is some other kind of file."""
    with open(path, "rb") as file:
        start = file.read(64)
    if start.startswith(b"PK\x03\x04") or start.startswith(b"\x80"):
        return "is a damaged or incomplete PyTorch file: copy or download it again"
    if not start:
        return "is empty, not a PyTorch file: point it at a .pth file written by train.py"
    try:
        text = start.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        return "is not a PyTorch file: point it at a .pth file written by train.py"
    kind = "JSON" if text[:1] in "[{" else "text"
    return f"holds {kind}, not a PyTorch model: point it at a .pth file written by train.py"


def write_rows(path, rows, columns):
    """A CSV with a header row, written atomically; floats with 4 decimals, NaN left empty."""
    with atomic_write(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return "" if value is None else value
