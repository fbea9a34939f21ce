"""Writing files so that a crash or Ctrl-C never leaves a half-written one behind."""

import contextlib
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
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


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


def ensure_writable_folder(folder, what):
    """Create `folder` if needed and prove we can write there, before any long work starts."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"cannot write the {what} to {folder}: {error.strerror or error}. "
                        "Choose a folder you can write to.") from error


def load_torch_file(path, description):
    """torch.load with weights_only=True, so that a file from a stranger can never run code;
    every failure becomes a UserError that names the file and says what went wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{description} {path} does not exist: check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if "unsupported global" in str(error).lower():  # weights_only refused a class or function reference
            raise UserError(f"refused to load {description} {path}: it contains Python objects other than "
                            "tensors and plain data, and loading them could run code. Only use files from "
                            "sources you trust; multitag-trainer's own files never need this.") from error
        raise UserError(f"{description} {path} is not a readable PyTorch file ({type(error).__name__}: {error}). "
                        "Is it a complete, uncorrupted copy?") from error
