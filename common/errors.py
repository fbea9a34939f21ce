"""Errors that are the user's to fix, shown as one clear line instead of a traceback."""

import contextlib
import functools
import os
import signal
import sys
import threading
from pathlib import Path


class UserError(Exception):
    """Something the user can fix: the message names the file or setting and says what to do."""


def exit_on_user_error(main):
    """Wrap a script's main() so that a UserError prints `error: ...` and exits with status 2.

    Set MULTITAG_DEBUG=1 (or pass --debug) to see the full traceback instead.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        if signal.getsignal(signal.SIGINT) is stop_at_once_while_starting:  # loaded: Ctrl-C now saves work
            signal.signal(signal.SIGINT, signal.default_int_handler)
        debug = "--debug" in sys.argv or os.environ.get("MULTITAG_DEBUG") == "1"
        try:
            return main(*args, **kwargs)
        except UserError as error:
            if debug:
                raise
            rank = os.environ.get("RANK", "0")  # set by torchrun; every process reports its own errors
            print(f"{'' if rank == '0' else f'[process {rank}] '}error: {error}", file=sys.stderr)
            sys.exit(2)
        except RuntimeError as error:
            message = worker_handover_error(error)
            if debug or not message:
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            if debug:
                raise
            if os.environ.get("RANK", "0") == "0":
                print("\ninterrupted (Ctrl-C); every file written so far is complete", file=sys.stderr)
            sys.exit(130)

    return wrapper


def worker_handover_error(error):
    """The message for PyTorch's error when the image-decoding workers cannot pass a batch to the
    main process through shared memory (files in /dev/shm) for lack of room; else None."""
    text = str(error)
    if "DataLoader worker" not in text and "/torch_" not in text:
        return None
    if "File too large" in text:
        cause = ("a file-size limit (ulimit -f) is lower than one batch of decoded images, which they pass on as "
                 "files in /dev/shm")
    elif any(sign in text for sign in ("No space left", "out of shared memory", "Bus error")):
        cause = "shared memory (/dev/shm) is full; in a Docker container, --shm-size raises it"
    else:
        return None
    return (f"the image-decoding processes could not hand their images over: {cause}. Nothing was "
            "half-written. Raise the limit, or decode in the main process with --workers 0, then run the same "
            "command again to carry on")


SCRIPTS = {"train.py", "infer.py", "prepare.py"}


def stop_at_once_while_starting(signal_number, frame):
    """SIGINT handler while a script imports its libraries: nothing is written yet, so end now.
    A KeyboardInterrupt raised inside an import can leave a library half-initialised (numpy
    then recursed until Python gave up, with a long traceback); exiting here never lets it."""
    print("\ninterrupted (Ctrl-C) while starting; nothing was written", file=sys.stderr, flush=True)
    os._exit(130)


def quiet_start(main_file):
    """For train.py, infer.py and prepare.py run as scripts (not in a notebook or the tests):
    a Ctrl-C before main() ends at once and quietly. main() restores the usual handling
    (exit_on_user_error), under which Ctrl-C saves what a run has done."""
    global _run_as_script
    _run_as_script = Path(main_file or "").name in SCRIPTS
    if _run_as_script and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, stop_at_once_while_starting)


_run_as_script = False


@contextlib.contextmanager
def loading_libraries():
    """Around the imports a script makes once its settings are checked (torch and the modules built
    on it): a Ctrl-C there, too, ends at once and quietly, as one before main() does."""
    quiet = _run_as_script and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, stop_at_once_while_starting) if quiet else None
    try:
        yield
    finally:
        if quiet:
            signal.signal(signal.SIGINT, previous)


def quiet_keyboard_interrupt(exception_type, exception, traceback, previous_hook=sys.excepthook):
    """sys.excepthook for scripts: Ctrl-C while the libraries are still loading (before main()
    runs, so before anything is written) ends with one line instead of a traceback."""
    if issubclass(exception_type, KeyboardInterrupt) and os.environ.get("MULTITAG_DEBUG") != "1":
        print("\ninterrupted (Ctrl-C) while starting; nothing was written", file=sys.stderr)
        return
    previous_hook(exception_type, exception, traceback)
