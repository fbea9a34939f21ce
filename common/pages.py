"""The HTML pages a run leaves for people to look at: the training report (NAME.report.html), the
near-duplicates (DIR.duplicates.html), infer.py's contact sheet (--html PATH), and the review pages
of common/review.py (the audit's suspects, a model's suggestions, duplicate groups that disagree).

Each page is one file: its styles, script, data and thumbnails (small JPEGs, as data: URIs) are
inside it, so it opens from disk, offline, mailed or archived, and loads nothing from anywhere; only
the review viewer reads its large pictures from the folder beside it (common/review.py says why).
The data goes in once as JSON and the script draws the interactive parts (sorting, filtering,
reviewing); the curves are drawn here as inline SVG, so they show without a script.
"""

import base64
import html
import io
import json
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.metrics import precision_recall_curve

from common.files import atomic_write
from common.folder_scan import map_in_threads
from common.images import open_image

THUMBNAIL_SIZE = 128  # pixels, the longer side; a JPEG of 3-6 KB
THUMBNAIL_QUALITY = 70
WORST_PER_TAG = 4  # false positives and false negatives shown for each tag in the report
PR_POINTS = 40  # points kept of each precision-recall curve: enough to draw it, small for hundreds of tags
# A page of near-duplicates shows the groups whose tags differ first, up to these numbers; the CSV holds them all
DUPLICATE_GROUPS_SHOWN = 500
DUPLICATE_PICTURES_SHOWN = 3000  # in all, so that the page stays a few MB (a thumbnail is 3-6 KB)
DUPLICATE_PICTURES_PER_GROUP = 24  # a group of hundreds (a burst, crops of one picture) shows its first ones


# ----------------------------------------------------------------------------- thumbnails
def thumbnail_uri(path, size=THUMBNAIL_SIZE):
    """A small JPEG of the image as a data: URI, or None for an image that cannot be read."""
    try:
        picture = open_image(path, min_size=size)  # JPEGs decode at reduced size: fast
    except Exception:  # an unreadable image gets no thumbnail; the page says so
        return None
    picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnails(paths, size=THUMBNAIL_SIZE):
    """{str(path): data URI or None} for distinct paths, decoded in threads (PIL releases the GIL)."""
    distinct = list(dict.fromkeys(str(path) for path in paths))
    return dict(zip(distinct, map_in_threads(lambda path: thumbnail_uri(path, size), distinct, chunk_size=32)))


# ----------------------------------------------------------------------------- SVG charts
def line_chart(series, title, x_label, y_range=None, width=420, height=240):
    """An inline SVG of one or more lines: series is [(label, xs, ys, colour)]."""
    points = [(x, y) for _, xs, ys, _ in series for x, y in zip(xs, ys) if _finite(y)]
    if not points:
        return f'<svg class="chart" width="{width}" height="{height}"><text x="10" y="20">{html.escape(title)}: ' \
               'no data</text></svg>'
    left, right, top, bottom = 46, 12, 26, 34
    x_low, x_high = min(x for x, _ in points), max(x for x, _ in points)
    y_low, y_high = y_range or (min(y for _, y in points), max(y for _, y in points))
    x_high, y_high = (x_high if x_high > x_low else x_low + 1), (y_high if y_high > y_low else y_low + 1)

    def place(x, y):
        return (left + (x - x_low) / (x_high - x_low) * (width - left - right),
                height - bottom - (y - y_low) / (y_high - y_low) * (height - top - bottom))

    parts = [f'<svg class="chart" role="img" aria-label="{html.escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">', f'<text x="{left}" y="16" class="title">{html.escape(title)}</text>']
    for fraction in (0, 0.5, 1):
        value = y_low + fraction * (y_high - y_low)
        _, y = place(x_low, value)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">{value:.3g}</text>')
    for value in (x_low, x_high):
        x, _ = place(value, y_low)
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" class="tick" text-anchor="middle">{value:g}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 4}" class="tick" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    for position, (label, xs, ys, colour) in enumerate(series):
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py in (place(x, y) for x, y in zip(xs, ys) if _finite(y)))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{width - right - 4}" y="{top + 12 + 14 * position}" class="tick" text-anchor="end" '
                     f'style="fill:{colour}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _finite(value):
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def training_curves_svg(history):
    epochs = [row["epoch"] for row in history]
    loss = [("train", epochs, [row["train_loss"] for row in history], "#1f77b4")]
    if any("val_loss" in row for row in history):
        loss.append(("validation", epochs, [row.get("val_loss") for row in history], "#ff7f0e"))
    charts = [line_chart(loss, "loss", "epoch")]
    if any("mAP" in row for row in history):
        charts.append(line_chart([("mAP", epochs, [row.get("mAP") for row in history], "#2ca02c")],
                                 "validation mAP", "epoch", y_range=(0, 1)))
    return "".join(charts)


def precision_recall_points(targets, probabilities, limit=PR_POINTS):
    """Each tag's precision-recall curve as [[recall...], [precision...]], thinned to `limit` points
    (None for a tag with no positive image)."""
    curves = []
    for tag in range(targets.shape[1]):
        if not targets[:, tag].any():
            curves.append(None)
            continue
        precision, recall, _ = precision_recall_curve(targets[:, tag], probabilities[:, tag])
        keep = np.unique(np.linspace(0, len(recall) - 1, min(limit, len(recall))).round().astype(int))
        curves.append([np.round(recall[keep], 3).tolist(), np.round(precision[keep], 3).tolist()])
    return curves


# ----------------------------------------------------------------------------- page data
def worst_images(targets, probabilities, thresholds, per_tag=WORST_PER_TAG):
    """For each tag, the validation images it got most wrong: false positives (tag absent, highest
    probability first) and false negatives (tag present, lowest first), as [[image row, p], ...]."""
    worst = []
    for tag in range(targets.shape[1]):
        column, present = probabilities[:, tag], targets[:, tag].astype(bool)
        false_positives = np.flatnonzero(~present & (column >= thresholds[tag]))
        false_negatives = np.flatnonzero(present & (column < thresholds[tag]))
        false_positives = false_positives[np.argsort(-column[false_positives], kind="stable")][:per_tag]
        false_negatives = false_negatives[np.argsort(column[false_negatives], kind="stable")][:per_tag]
        worst.append({"fp": [[int(i), round(float(column[i]), 3)] for i in false_positives],
                      "fn": [[int(i), round(float(column[i]), 3)] for i in false_negatives]})
    return worst


class ValidationShown(NamedTuple):
    """The validation images as the report page shows them, and what the model made of them."""

    names: list  # as shown on the page
    image_paths: list  # where to read them, for the thumbnails
    targets: np.ndarray  # (images x tags) 0/1
    probabilities: np.ndarray
    thresholds: list  # each tag's decision point
    tag_rows: list  # the per-tag table (metrics.tag_report), worst first


def report_data(title, history, tags, validation=None, links=(), summary=""):
    """Everything the report page shows, as plain JSON-ready data: the curves of `history`, a
    ValidationShown's table, worst pictures and precision-recall, and links to review pages as
    (href, text, note)."""
    validation = validation or ValidationShown([], [], np.zeros((0, len(tags))), np.zeros((0, len(tags))),
                                               [0.5] * len(tags), [])
    names = validation.names
    targets, probabilities = np.asarray(validation.targets), np.asarray(validation.probabilities)
    worst = worst_images(targets, probabilities, validation.thresholds) if len(names) else []
    shown = sorted({row for tag in worst for side in ("fp", "fn") for row, _ in tag[side]})
    pictures = {names[row]: validation.image_paths[row] for row in shown}
    thumbs = thumbnails(list(pictures.values()))
    return {"kind": "report", "title": title, "summary": summary, "tags": list(tags), "names": list(names),
            "thumbs": {name: thumbs[str(path)] for name, path in pictures.items()},
            "table": [_plain_row(row) for row in validation.tag_rows], "worst": worst,
            "pr": precision_recall_points(targets, probabilities) if len(names) else [],
            "links": [{"href": href, "text": text, "note": note} for href, text, note in links],
            "curves_svg": training_curves_svg(history) if history else ""}


def duplicates_data(title, groups, folder, summary=""):
    """`prepare.py duplicates`' page: groups are (image names, their tags (None: no tag file), the
    tags that differ between them, whether the files are identical), shown in that order."""
    groups, shown, pictures = list(groups), [], 0
    for images, tags, differ, identical in groups[:DUPLICATE_GROUPS_SHOWN]:
        if pictures >= DUPLICATE_PICTURES_SHOWN:
            break
        kept = min(len(images), DUPLICATE_PICTURES_PER_GROUP, DUPLICATE_PICTURES_SHOWN - pictures)
        shown.append({"images": images[:kept], "tags": tags[:kept], "more": len(images) - kept, "differ": differ,
                      "identical": identical})
        pictures += kept
    names = [name for group in shown for name in group["images"]]
    thumbs = thumbnails([Path(folder) / name for name in names])
    return {"kind": "duplicates", "title": title, "summary": summary, "found": len(groups), "groups": shown,
            "thumbs": {name: thumbs[str(Path(folder) / name)] for name in names}}


def contact_sheet_data(title, entries, summary=""):
    """infer.py --html: entries are (name, path, {tag: probability} of the chosen tags, doubt), doubt
    being (tag, probability, distance from its threshold) of the most uncertain tag."""
    thumbs = thumbnails([path for _, path, _, _ in entries])
    return {"kind": "sheet", "title": title, "summary": summary,
            "images": [{"name": name, "tags": tags, "doubt": doubt, "thumb": thumbs[str(path)]}
                       for name, path, tags, doubt in entries]}


def _plain_row(row):
    return {key: (None if isinstance(value, float) and math.isnan(value) else
                  round(value, 4) if isinstance(value, float) else value) for key, value in row.items()}


# ----------------------------------------------------------------------------- the page
def render_page(data):
    """The complete HTML of a page for data from report_data, duplicates_data, contact_sheet_data or
    common/review.py's review_data."""
    curves = data.pop("curves_svg", "")
    payload = page_payload(data)
    title = html.escape(data["title"])
    warning = f'<p class="warning" id="warning">{html.escape(data["warning"])}</p>' if data.get("warning") else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{title}</title><style>{STYLE}</style></head>\n<body>'
            f'<h1>{title}</h1><p class="summary">{html.escape(data.get("summary", ""))}</p>'
            f'{warning}'
            f'{f"<section id=curves><h2>Training curves</h2>{curves}</section>" if curves else ""}'
            f'<div id="app"><noscript>The tables and pictures of this page need JavaScript.</noscript></div>'
            f'<script id="page-data" type="application/json">{payload}</script>'
            f'<script>{SCRIPT}</script></body></html>\n')


def page_payload(data):
    """The page's data as the JSON inside its script element: "</" escaped, so that a tag holding
    "</script>" cannot end the element early."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def write_page(path, data):
    """Write the page atomically; returns its size in bytes."""
    page = render_page(data).encode("utf-8")
    with atomic_write(path, "wb") as file:
        file.write(page)
    return len(page)


def notebook_frame(path, height=800):
    """The page at `path` inside a notebook cell (an iframe holding its own document, so that its
    styles and script touch nothing else in the notebook). A review page's pictures are put inside
    it, as thumbnails: the iframe cannot follow the page's paths to them. Click into the frame
    before using its keys."""
    from IPython.display import HTML

    page = Path(path).read_text(encoding="utf-8")
    if '"kind":"review"' in page:
        page = with_pictures_inside(page, Path(path).parent)
    return HTML(f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;'
                'border:1px solid #ccc"></iframe>')


PAGE_DATA = re.compile(r'<script id="page-data" type="application/json">(.*?)</script>', re.S)


def page_data_of(page):
    """The data a page's HTML carries, as its script reads it."""
    return json.loads(PAGE_DATA.search(page).group(1))


def with_pictures_inside(page, folder, size=2 * THUMBNAIL_SIZE):
    """A review page whose pictures are data: URIs (256-px thumbnails) instead of paths from `folder`."""
    from urllib.parse import unquote, urlparse

    found = PAGE_DATA.search(page)
    data = json.loads(found.group(1))
    paths = [Path(urlparse(image["src"]).path) if image["src"].startswith("file:") else folder / unquote(image["src"])
             for image in data["images"]]
    thumbs = thumbnails(paths, size)
    for image, picture in zip(data["images"], paths):
        image["src"] = thumbs[str(picture)] or image["src"]
    return page[:found.start(1)] + page_payload(data) + page[found.end(1):]


# The page's style and script live beside this module as plain files, and go into every page.
STYLE = (Path(__file__).parent / "page.css").read_text(encoding="utf-8")
SCRIPT = "\n".join((Path(__file__).parent / name).read_text(encoding="utf-8") for name in ("page.js", "review.js"))
