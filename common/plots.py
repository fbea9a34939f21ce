"""Pictures drawn with matplotlib: a run's loss and mAP curves and precision-recall plot (PNG
files beside the model), and the notebooks' grids of images and tag-frequency charts. The HTML
pages are common/pages.py's.

Plots use matplotlib's object-oriented Figure API rather than pyplot, so writing a PNG never
changes the plotting backend of a notebook that imports this module.
"""

import math

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve

from common.files import atomic_write
from common.images import open_image


def plot_training_curves(history, path):
    """Train and validation loss, and validation mAP, per epoch."""
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    loss_axes, map_axes = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    loss_axes.plot(epochs, [row["train_loss"] for row in history], marker="o", label="train")
    if any("val_loss" in row for row in history):
        loss_axes.plot(epochs, [row.get("val_loss", math.nan) for row in history], marker="o", label="validation")
        map_axes.plot(epochs, [row.get("mAP", math.nan) for row in history], marker="o", color="tab:green")
    loss_axes.set(title="loss", xlabel="epoch")
    loss_axes.legend()
    map_axes.set(title="validation mAP", xlabel="epoch", ylim=(0, 1))
    for axes in (loss_axes, map_axes):
        axes.grid(alpha=0.3)
    _save(figure, path)


def plot_precision_recall(targets, probabilities, tags, path, per_side=3):
    """Precision-recall curves of the most and the least frequent tags of the validation set."""
    targets = np.asarray(targets)
    support = targets.sum(0)
    present = [tag for tag in np.argsort(-support, kind="stable") if support[tag] > 0]
    chosen = present[:per_side] + [tag for tag in present[-per_side:] if tag not in present[:per_side]]
    figure = Figure(figsize=(5.5, 4.5), layout="constrained")
    axes = figure.subplots()
    for tag in chosen:
        precision, recall, _ = precision_recall_curve(targets[:, tag], probabilities[:, tag])
        axes.step(recall, precision, where="post", label=f"{tags[tag]} ({int(support[tag])})")
    axes.set(title="precision-recall, most and least frequent tags", xlabel="recall", ylabel="precision",
             xlim=(0, 1), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="lower left")
    _save(figure, path)


def _save(figure, path):
    with atomic_write(path, "wb") as file:
        figure.savefig(file, format="png", dpi=100)


def image_grid(paths, captions, columns=4, size=2.6):
    """A figure of pictures, each with its caption (tags, probabilities) below it, for notebooks."""
    rows = max(1, math.ceil(len(paths) / columns))
    figure = Figure(figsize=(columns * size, rows * (size + 0.5)), layout="constrained")
    for axes in figure.subplots(rows, columns, squeeze=False).flat:
        axes.set_axis_off()
    for axes, path, caption in zip(figure.axes, paths, captions):
        try:
            axes.imshow(open_image(path, min_size=256))
        except Exception as error:  # an unreadable image gets its reason instead of a picture
            caption = f"unreadable: {error}"
        axes.set_title(path.name, fontsize=8)
        axes.text(0.5, -0.02, caption, transform=axes.transAxes, ha="center", va="top", fontsize=7, wrap=True)
    return figure


def tag_frequency_chart(frequency, limit=40):
    """A horizontal bar chart of how many images carry each tag, most common at the top."""
    common = sorted(frequency.items(), key=lambda item: (-item[1], item[0]))[:limit]
    figure = Figure(figsize=(7, 0.25 * len(common) + 1), layout="constrained")
    axes = figure.subplots()
    axes.barh([tag for tag, _ in common][::-1], [count for _, count in common][::-1], color="tab:blue")
    axes.set(title=f"images per tag ({len(frequency)} tags{', top ' + str(limit) if len(frequency) > limit else ''})",
             xlabel="images")
    axes.grid(axis="x", alpha=0.3)
    return figure
