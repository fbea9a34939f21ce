"""Writing files so that a crash or Ctrl-C never leaves a half-written one behind."""

import contextlib
import os
import tempfile
from pathlib import Path

from common.errors import UserError


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
