"""What a run leaves for people to read: its CSV tables (common/files.py), the per-tag text table
(common/metrics.py) and the plots (common/plots.py)."""

import csv
import math

import numpy as np

from common.files import write_rows
from common.metrics import format_tag_report
from common.plots import plot_precision_recall, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_csv_rows_round_floats_and_leave_missing_and_nan_cells_empty(tmp_path):
    write_rows(tmp_path / "t.csv", [{"tag": "cat", "ap": 0.123456, "f1": math.nan}, {"tag": "dog", "ap": 1.0}],
               ["tag", "ap", "f1"])
    with open(tmp_path / "t.csv", newline="") as file:
        assert list(csv.reader(file)) == [["tag", "ap", "f1"], ["cat", "0.1235", ""], ["dog", "1.0000", ""]]


def test_the_tag_report_shows_the_worst_tags_and_says_how_many_more_there_are():
    rows = [{"tag": f"tag{number}", "support": number, "ap": 0.1 * number, "precision": 0.5, "recall": 0.25,
             "f1": 1 / 3, "threshold": 0.4} for number in range(12)]
    text = format_tag_report(rows, limit=3)
    lines = text.splitlines()
    assert lines[0].split() == ["tag", "support", "AP", "prec", "recall", "F1", "thresh"]
    assert [line.split()[0] for line in lines[1:4]] == ["tag0", "tag1", "tag2"]
    assert lines[2].split() == ["tag1", "1", "0.100", "0.500", "0.250", "0.333", "0.400"]
    assert lines[-1].strip() == "... and 9 more tags in the CSV report"


def test_plots_are_written_as_png_with_or_without_validation(tmp_path):
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "mAP": 0.4},
               {"epoch": 2, "train_loss": 0.7, "val_loss": 0.9, "mAP": 0.6}]
    plot_training_curves(history, tmp_path / "curves.png")
    plot_training_curves([{"epoch": 1, "train_loss": 1.0}], tmp_path / "train_only.png")
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, (30, 4))
    plot_precision_recall(targets, rng.random((30, 4)), ["a", "b", "c", "d"], tmp_path / "pr.png")
    for name in ("curves.png", "train_only.png", "pr.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE and (tmp_path / name).stat().st_size > 5000
