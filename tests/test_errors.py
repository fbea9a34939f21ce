"""A user's mistake ends a script with one line and status 2; --debug shows the traceback instead."""

import sys

import pytest

from common.errors import UserError, exit_on_user_error


@exit_on_user_error
def failing(error):
    raise error


def test_a_user_error_is_one_line_on_stderr_and_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        failing(UserError("the folder photos/ does not exist: check the path"))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: the folder photos/ does not exist: check the path\n"


def test_ctrl_c_is_one_line_and_status_130(capsys):
    with pytest.raises(SystemExit) as exit_:
        failing(KeyboardInterrupt())
    assert exit_.value.code == 130 and "every file written so far is complete" in capsys.readouterr().err


def test_debug_by_flag_or_environment_shows_the_traceback(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train.py", "--debug"])
    with pytest.raises(UserError):
        failing(UserError("shown with its traceback"))
    monkeypatch.setattr(sys, "argv", ["train.py"])
    monkeypatch.setenv("MULTITAG_DEBUG", "1")
    with pytest.raises(KeyboardInterrupt):
        failing(KeyboardInterrupt())


def test_other_errors_are_never_hidden():
    with pytest.raises(ZeroDivisionError):
        failing(ZeroDivisionError("a bug, which needs its traceback"))
