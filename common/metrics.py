"""Multi-label metrics over an (images x tags) matrix of 0/1 targets and of probabilities,
and the per-tag threshold calibration that turns probabilities into tags."""

import math

import numpy as np

# Candidate thresholds for calibration: fine enough to matter, coarse enough not to overfit.
THRESHOLD_GRID = np.round(np.arange(0.02, 0.981, 0.02), 2)
# A tag's own best threshold is trusted in proportion to positives / (positives + this);
# with few validation positives it stays close to the threshold that is best for all tags.
# On the test items of bench/thresholds.py, 20 and 50 did best (0, 2 and 5 pulled too little);
# 20 lets a tag with many positives follow its own threshold sooner (bench/README.md).
CALIBRATION_PRIOR_POSITIVES = 20


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


def per_tag_counts(targets, predictions):
    """Arrays of TP, FP and FN for each tag (column)."""
    targets = np.asarray(targets).astype(bool)
    predictions = np.asarray(predictions).astype(bool)
    return ((targets & predictions).sum(0), (~targets & predictions).sum(0), (targets & ~predictions).sum(0))


def per_tag_f1(targets, predictions):
    tp, fp, fn = per_tag_counts(targets, predictions)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)


def macro_f1(targets, predictions):
    """Mean F1 over the tags that have at least one positive example (NaN if none do)."""
    present = np.asarray(targets).astype(bool).any(0)
    return float(per_tag_f1(targets, predictions)[present].mean()) if present.any() else math.nan


def per_tag_average_precision(targets, scores):
    """Average precision of each tag (column), as scikit-learn's average_precision_score defines it
    (tied scores form one step), for all tags at once: a loop of scikit-learn calls took a third of
    a second per validation pass with 300 tags. NaN for a tag with no positive example, since
    precision is undefined there."""
    targets = np.asarray(targets).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if targets.ndim != 2 or len(targets) == 0:
        return np.full(targets.shape[-1] if targets.ndim == 2 else 0, math.nan)
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    true_positives = np.cumsum(np.take_along_axis(targets, order, axis=0), axis=0)
    # A precision-recall point exists only where the score changes (the last of a run of ties)
    step_ends = np.ones_like(targets)
    step_ends[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    at_ends = np.where(step_ends, true_positives, 0)
    before = np.vstack([np.zeros((1, targets.shape[1])), np.maximum.accumulate(at_ends, axis=0)[:-1]])
    recall_steps = np.where(step_ends, true_positives - before, 0)
    precision = true_positives / np.arange(1, len(targets) + 1)[:, None]
    positives = targets.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positives > 0, (recall_steps * precision).sum(axis=0) / positives, math.nan)


def mean_average_precision(targets, scores):
    """Macro mAP over the tags that have at least one positive example (NaN if none do)."""
    per_tag = per_tag_average_precision(targets, scores)
    return float(np.nanmean(per_tag)) if not np.all(np.isnan(per_tag)) else math.nan


def evaluate(targets, probabilities, thresholds):
    """mAP, micro- and macro-F1 and confusion counts for probabilities cut at per-tag thresholds."""
    probabilities = np.asarray(probabilities)
    predictions = probabilities >= np.asarray(thresholds)[None, :]
    counts = confusion_counts(targets, predictions)
    return {"mAP": mean_average_precision(targets, probabilities), "micro_f1": f1_from_counts(**counts),
            "macro_f1": macro_f1(targets, predictions), **counts}


def calibrate_thresholds(targets, probabilities, prior_positives=CALIBRATION_PRIOR_POSITIVES, shared_for="both"):
    """Per-tag thresholds that maximise F1 on held-out data.

    First the one threshold that is best for all tags together: by default the one that
    maximises micro-F1 + macro-F1, so that it suits the common tags (which dominate micro-F1)
    and the rare ones (which count as much as any in macro-F1) alike; shared_for="micro" takes
    micro-F1 alone. Then, for each tag, the threshold that maximises its own F1, pulled toward
    the shared one the fewer validation positives the tag has. A tag with no positive at all
    keeps the shared threshold.
    """
    targets = np.asarray(targets).astype(bool)
    probabilities = np.asarray(probabilities)
    # tp[g, t], fp[g, t], fn[g, t]: counts of tag t at grid threshold g (one grid point at a time,
    # so memory stays at one images x tags matrix however large the grid)
    tp, fp, fn = (np.stack(counts) for counts in zip(*(
        per_tag_counts(targets, probabilities >= threshold) for threshold in THRESHOLD_GRID)))
    positives = targets.sum(0)
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)  # [grid point, tag]
    pooled = 2 * tp.sum(1) / np.maximum(2 * tp.sum(1) + fp.sum(1) + fn.sum(1), 1)
    if shared_for == "both" and positives.any():
        pooled = pooled + f1[:, positives > 0].mean(1)
    shared = THRESHOLD_GRID[_middle_of_best(pooled)]
    thresholds = np.full(targets.shape[1], shared)
    for tag in np.flatnonzero(positives):
        own = THRESHOLD_GRID[_middle_of_best(f1[:, tag])]
        trust = positives[tag] / (positives[tag] + prior_positives)
        thresholds[tag] = trust * own + (1 - trust) * shared
    return np.round(thresholds, 3)


def _middle_of_best(scores):
    """Index of the middle of the widest run of best scores: a plateau's centre is the threshold
    least likely to be an accident of this particular validation set."""
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    widest = max(runs, key=len)
    return int(widest[len(widest) // 2])


def tag_report(targets, probabilities, thresholds, tags):
    """One row per tag: support, AP, precision, recall, F1 and threshold, worst F1 first."""
    targets = np.asarray(targets).astype(bool)
    predictions = np.asarray(probabilities) >= np.asarray(thresholds)[None, :]
    tp, fp, fn = per_tag_counts(targets, predictions)
    average_precision = per_tag_average_precision(targets, probabilities)
    f1 = per_tag_f1(targets, predictions)
    rows = [{"tag": tag, "support": int(targets[:, i].sum()), "ap": float(average_precision[i]),
             "precision": float(tp[i] / (tp[i] + fp[i])) if tp[i] + fp[i] else math.nan,
             "recall": float(tp[i] / (tp[i] + fn[i])) if tp[i] + fn[i] else math.nan,
             "f1": float(f1[i]), "threshold": float(thresholds[i])} for i, tag in enumerate(tags)]
    return sorted(rows, key=lambda row: (row["support"] == 0, row["f1"], row["tag"]))


def format_tag_report(rows, limit=10):
    """The worst `limit` tags as a small fixed-width table (rows come sorted worst first)."""
    shown = rows[:limit]
    width = max([len("tag")] + [len(row["tag"]) for row in shown])
    lines = [f"  {'tag':<{width}}  {'support':>7}  {'AP':>5}  {'prec':>5}  {'recall':>6}  {'F1':>5}  {'thresh':>6}"]
    for row in shown:
        lines.append(f"  {row['tag']:<{width}}  {row['support']:>7}  {row['ap']:5.3f}  {row['precision']:5.3f}  "
                     f"{row['recall']:6.3f}  {row['f1']:5.3f}  {row['threshold']:6.3f}")
    if len(rows) > limit:
        lines.append(f"  ... and {len(rows) - limit} more tags in the CSV report")
    return "\n".join(lines)
