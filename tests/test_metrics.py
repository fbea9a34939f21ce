"""Our multi-label metrics agree with scikit-learn's."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, multilabel_confusion_matrix

from common.metrics import confusion_counts, evaluate, f1_from_counts, mean_average_precision


@pytest.fixture
def predictions():
    generator = np.random.default_rng(7)
    targets = (generator.random((60, 6)) < 0.3).astype(int)
    targets[:, 5] = 0  # a tag with no positive example in this set
    scores = np.clip(targets * 0.4 + generator.random((60, 6)) * 0.6, 0, 1)
    return targets, scores


def test_confusion_counts_match_sklearn(predictions):
    targets, scores = predictions
    decided = scores >= 0.5
    tn, fp, fn, tp = multilabel_confusion_matrix(targets, decided).sum(axis=0).ravel()
    assert confusion_counts(targets, decided) == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def test_micro_f1_matches_sklearn(predictions):
    targets, scores = predictions
    decided = scores >= 0.5
    assert f1_from_counts(**confusion_counts(targets, decided)) == pytest.approx(
        f1_score(targets, decided, average="micro"))


def test_map_averages_sklearn_ap_over_tags_with_positives(predictions):
    targets, scores = predictions
    expected = np.mean([average_precision_score(targets[:, t], scores[:, t]) for t in range(5)])
    assert mean_average_precision(targets, scores) == pytest.approx(expected)


def test_perfect_and_empty_cases():
    targets = np.array([[1, 0], [0, 1]])
    assert mean_average_precision(targets, targets * 0.9) == 1.0
    assert math.isnan(mean_average_precision(np.zeros((2, 2)), np.ones((2, 2))))
    assert f1_from_counts(tp=0, fp=0, fn=0) == 1.0


def test_evaluate_uses_per_tag_thresholds():
    targets = np.array([[1, 1]])
    result = evaluate(targets, np.array([[0.6, 0.6]]), thresholds=[0.5, 0.7])
    assert (result["tp"], result["fn"]) == (1, 1)
