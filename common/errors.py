"""Errors that are the user's to fix, shown as one clear line instead of a traceback."""

import functools
import os
import sys


class UserError(Exception):
    """Something the user can fix: the message names the file or setting and says what to do."""


def exit_on_user_error(main):
    """Wrap a script's main() so that a UserError prints `error: ...` and exits with status 2.

    Set MULTITAG_DEBUG=1 (or pass --debug) to see the full traceback instead.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        debug = "--debug" in sys.argv or os.environ.get("MULTITAG_DEBUG") == "1"
        try:
            return main(*args, **kwargs)
        except UserError as error:
            if debug:
                raise
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
