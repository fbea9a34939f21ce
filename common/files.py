"""Writing files so that a crash or Ctrl-C never leaves a half-written one behind."""

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path

import torch

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
    try:
        # mkstemp makes private (0600) files; give the new file the old one's permissions, or the
        # ones any new file would get, so that sidecars stay readable by galleries and other users
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode) if path.exists() else NEW_FILE_MODE)
        text_options = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with os.fdopen(handle, mode, **text_options) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        lack_of_room = no_room_error(path, error) if isinstance(error, OSError) else None
        if lack_of_room:
            raise lack_of_room from None
        raise


# Write failures that are no fault of the program: each stops a run with one line naming the file.
NO_ROOM = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EFBIG: "the file would pass the file-size limit (ulimit -f)"}


def no_room_error(path, error):
    """A UserError for a write that failed for lack of room, else None."""
    if error.errno not in NO_ROOM:
        return None
    return UserError(f"could not write {path}: {NO_ROOM[error.errno]}. Nothing was half-written: {path} is as it "
                     "was before. Make room, then run the same command again to carry on")


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
