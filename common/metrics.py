"""Multi-label metrics over an (images x tags) matrix of 0/1 targets and of probabilities."""

import math

import numpy as np
from sklearn.metrics import average_precision_score


def confusion_counts(targets, predictions):
    """True/false positives and negatives summed over every image-tag decision."""
    targets = np.asarray(targets).astype(bool)
    predictions = np.asarray(predictions).astype(bool)
    return {
        "tp": int(np.sum(targets & predictions)),
        "fp": int(np.sum(~targets & predictions)),
        "fn": int(np.sum(targets & ~predictions)),
        "tn": int(np.sum(~targets & ~predictions)),
    }


def f1_from_counts(tp, fp, fn, **_):
    """F1 = 2TP / (2TP + FP + FN); defined as 1.0 when there is nothing to find and nothing found."""
    denominator = 2 * tp + fp + fn
    return 1.0 if denominator == 0 else 2 * tp / denominator


def per_tag_average_precision(targets, scores):
    """Average precision of each tag (scikit-learn's definition); NaN for a tag with no positive
    example, since precision is undefined there."""
    targets = np.asarray(targets)
    scores = np.asarray(scores)
    return np.array([
        average_precision_score(targets[:, column], scores[:, column]) if targets[:, column].any() else math.nan
        for column in range(targets.shape[1])
    ])


def mean_average_precision(targets, scores):
    """Macro mAP over the tags that have at least one positive example (NaN if none do)."""
    per_tag = per_tag_average_precision(targets, scores)
    return float(np.nanmean(per_tag)) if not np.all(np.isnan(per_tag)) else math.nan


def evaluate(targets, probabilities, thresholds):
    """mAP, micro-F1 and confusion counts for probabilities cut at per-tag thresholds."""
    probabilities = np.asarray(probabilities)
    predictions = probabilities >= np.asarray(thresholds)[None, :]
    counts = confusion_counts(targets, predictions)
    return {"mAP": mean_average_precision(targets, probabilities), "micro_f1": f1_from_counts(**counts), **counts}
