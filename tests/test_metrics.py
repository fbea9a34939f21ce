"""Our multi-label metrics agree with scikit-learn's."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    multilabel_confusion_matrix,
    precision_score,
    recall_score,
)

from common.metrics import (
    calibrate_thresholds,
    confusion_counts,
    evaluate,
    f1_from_counts,
    macro_f1,
    mean_average_precision,
    per_tag_average_precision,
    tag_report,
)


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


@given(st.integers(1, 40), st.integers(1, 6), st.integers(0, 2**32 - 1), st.sampled_from([1, 2, 6]))
@settings(max_examples=60, deadline=None)
def test_average_precision_of_every_tag_at_once_matches_sklearn_ties_included(images, tags, seed, decimals):
    rng = np.random.default_rng(seed)
    targets = rng.random((images, tags)) < rng.random()
    scores = np.round(rng.random((images, tags)), decimals)  # one or two decimals: many tied scores
    expected = [average_precision_score(targets[:, t], scores[:, t]) if targets[:, t].any() else math.nan
                for t in range(tags)]
    assert per_tag_average_precision(targets, scores) == pytest.approx(expected, nan_ok=True)


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


def test_macro_f1_matches_sklearn_over_tags_with_positives(predictions):
    targets, scores = predictions
    decided = scores >= 0.5
    per_tag = f1_score(targets, decided, average=None, zero_division=0)
    assert macro_f1(targets, decided) == pytest.approx(per_tag[:5].mean())


def test_calibrated_thresholds_beat_a_flat_half_on_the_data_they_were_fit_on():
    generator = np.random.default_rng(3)
    targets = (generator.random((300, 4)) < [0.5, 0.2, 0.05, 0.3]).astype(int)
    # a model that is right but under-confident: positives score only a little higher
    scores = np.clip(0.15 + 0.25 * targets + generator.normal(0, 0.08, targets.shape), 0, 1)
    thresholds = calibrate_thresholds(targets, scores)
    assert np.all((thresholds > 0) & (thresholds < 1))
    assert evaluate(targets, scores, thresholds)["micro_f1"] > evaluate(targets, scores, [0.5] * 4)["micro_f1"] + 0.3


def test_tags_with_few_positives_lean_on_the_shared_threshold():
    generator = np.random.default_rng(4)
    targets = (generator.random((400, 3)) < [0.4, 0.4, 0.0]).astype(int)
    targets[0, 2] = 1  # one lone positive
    scores = np.clip(0.2 + 0.4 * targets + generator.normal(0, 0.1, targets.shape), 0, 1)
    scores[0, 2] = 0.95  # its own best threshold would be far above the others
    thresholds = calibrate_thresholds(targets, scores)
    shared = calibrate_thresholds(targets[:, :2], scores[:, :2]).mean()
    assert abs(thresholds[2] - shared) < abs(0.95 - shared) / 2
    no_positive = calibrate_thresholds(np.zeros((10, 1)), np.full((10, 1), 0.3))
    assert 0 < no_positive[0] < 1


def test_tag_report_rows_match_sklearn_and_come_worst_first(predictions):
    targets, scores = predictions
    rows = tag_report(targets, scores, [0.5] * 6, list("abcdef"))
    assert [row["f1"] for row in rows[:5]] == sorted(row["f1"] for row in rows[:5])
    assert rows[-1]["tag"] == "f" and rows[-1]["support"] == 0  # a tag without examples goes last
    row = next(row for row in rows if row["tag"] == "b")
    assert row["precision"] == pytest.approx(precision_score(targets[:, 1], scores[:, 1] >= 0.5))
    assert row["recall"] == pytest.approx(recall_score(targets[:, 1], scores[:, 1] >= 0.5))
    assert row["ap"] == pytest.approx(average_precision_score(targets[:, 1], scores[:, 1]))


def test_the_shared_threshold_serves_rare_tags_too_not_only_the_common_ones():
    generator = np.random.default_rng(5)
    targets = (generator.random((400, 5)) < [0.5, 0.03, 0.03, 0.03, 0.03]).astype(int)
    # the common tag separates at about 0.5; the rare ones only at about 0.2
    centre = np.where(np.arange(5) == 0, 0.3, 0.1)
    scores = np.clip(centre + np.where(np.arange(5) == 0, 0.4, 0.2) * targets
                     + generator.normal(0, 0.05, targets.shape), 0, 1)
    for_micro = calibrate_thresholds(targets, scores, prior_positives=np.inf, shared_for="micro")
    for_both = calibrate_thresholds(targets, scores, prior_positives=np.inf)
    assert len(set(for_micro)) == len(set(for_both)) == 1  # an infinite prior: the shared threshold alone
    assert for_both[0] < for_micro[0]
    assert evaluate(targets, scores, for_both)["macro_f1"] > evaluate(targets, scores, for_micro)["macro_f1"] + 0.1
