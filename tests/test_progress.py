"""Progress bars where a person watches; where output goes to a file, a plain line now and then."""


import common.progress
from common.progress import Counter, progress


def test_without_a_terminal_there_are_no_bars_only_occasional_lines(monkeypatch, capsys):
    assert not common.progress.bars_wanted()  # pytest captures stderr: no terminal
    assert list(progress(range(5), "epoch 1/3")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr() == ("", "")  # quick work: not a word
    monkeypatch.setattr(common.progress, "LINE_INTERVAL", 0)
    list(progress(range(3), "epoch 1/3"))
    assert capsys.readouterr().out.splitlines()[-1].startswith("epoch 1/3: 3/3 batches, ")
    counter = Counter(10, "tagging", "image")
    counter.update(4)
    counter.close()
    assert capsys.readouterr().out.startswith("tagging: 4/10 images, ")


def test_a_training_run_logged_to_a_file_has_no_bar_redraws(trained):
    _, result = trained  # run in this process, whose output goes to a string, as to a log file
    assert "\r" not in result.stderr and "batch/s" not in result.stderr and "it/s" not in result.stderr
