"""The review page: one keyboard-driven viewer for every list of suggested tag changes the toolkit
makes, and the data each source hands it.

    the audit's suspects     prepare.py audit        DIR.suspects.html
    a model's suggestions    infer.py --html PAGE    on a folder whose images already have tags
    duplicate groups         prepare.py duplicates   DIR.duplicates.html, groups whose tags disagree
    the run report's look    train.py                NAME.suspects.html, the validation pairs it doubts

Every source becomes the same items: a change to one tag (add it: kind `missing`, or take it off:
kind `extra`) on one or more images, with the pictures to look at while deciding. A person accepts
or rejects each one with a key, may type tags of their own, and saves the decisions as the
suspects CSV that `prepare.py fix` applies (common/suspects.py), so that nothing changes a tag
file before a person decided it. The page's script (common/review.js) keeps every decision in the
browser's storage, keyed by the page's file, so a reload or a closed tab loses nothing.

The page reads the pictures themselves from the folder, by their path relative to the page: a
page of 10,000 suggestions stays a few MB and shows each picture at full size, and it still
works offline from disk. Moving the page away from the folder leaves it without its pictures.
"""

import math
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np

from common.pages import write_page
from common.tagfiles import find_tag_file, read_tag_file

MAIN_PICTURES = 6  # pictures shown together for one item (the rest of a large duplicate group is counted)


# ----------------------------------------------------------------------------- the items of each source
def relative_url(target, page):
    """The URL of a file (a picture, another page) as the page at `page` refers to it: relative
    when it can be (the page and the folder move together), else an absolute file: URI."""
    target, page = Path(target).resolve(), Path(page).resolve()
    try:
        return quote(Path(os.path.relpath(target, page.parent)).as_posix())
    except ValueError:  # on another drive (Windows): no relative path exists
        return target.as_uri()


def sureness(probability, threshold):
    """How far a probability lies from its tag's threshold, in logits: the same step means as much
    for a tag decided at 0.1 as for one decided at 0.7."""
    def logit(p):
        p = min(max(float(p), 1e-6), 1 - 1e-6)
        return math.log(p / (1 - p))

    return abs(logit(probability) - logit(threshold))


def suggested_changes(probabilities, thresholds, usable, vocabulary, current):
    """One image's suggestions from a model: the tags it would add (above their thresholds, usable,
    not in the tag file) and the file's tags it doubts (known to it, below their thresholds), as
    [(tag, kind, probability, sureness)], surest first."""
    current = set(current)
    changes = []
    for position, tag in enumerate(vocabulary):
        p, threshold = float(probabilities[position]), float(thresholds[position])
        if not usable[position] or math.isnan(p):
            continue
        if p >= threshold and tag not in current:
            changes.append((tag, "missing", p, sureness(p, threshold)))
        elif p < threshold and tag in current:
            changes.append((tag, "extra", p, sureness(p, threshold)))
    return sorted(changes, key=lambda change: -change[3])


def suggestion_items(reviewed, thresholds, usable, vocabulary):
    """infer.py's items: reviewed holds (image name, its tags now, the model's probabilities) of
    every tagged image. Each suggestion (suggested_changes) is ranked by how likely it is right
    once the model's probability is judged again with the image's other tags, as the audit ranks
    labels (common/suspects.py's context_probabilities, fitted on the folder's own labels): that
    corrects each tag's probabilities to this folder, where a model's raw sureness over-trusts the
    tags it is wrong about here (bench/README.md). The likeliest first; ties in folder order."""
    from common.folder_scan import multi_hot
    from common.suspects import context_probabilities

    readable = [entry for entry in reviewed if not np.isnan(entry[2]).any()]
    probabilities = np.array([row for _, _, row in readable], dtype=np.float64).reshape(len(readable), len(vocabulary))
    judged = probabilities
    if len(readable) >= 4:  # enough images to fit on the others
        judged = context_probabilities(multi_hot([tags for _, tags, _ in readable], vocabulary), probabilities)
    column = {tag: position for position, tag in enumerate(vocabulary)}
    items = []
    for row, (name, tags, _) in enumerate(readable):
        for tag, kind, p, _ in suggested_changes(probabilities[row], thresholds, usable, vocabulary, tags):
            belief = judged[row, column[tag]] if kind == "missing" else 1 - judged[row, column[tag]]
            items.append({"targets": [name], "tag": tag, "kind": kind, "p": round(p, 4), "score": round(belief, 4)})
    return sorted(items, key=lambda item: -item["score"])  # stable: folder order among equals


def suspect_items(rows):
    """The audit's items, in the CSV's order (most suspicious first)."""
    def number(value):
        try:
            return round(float(value), 4)
        except (TypeError, ValueError):
            return None

    return [{"targets": [row["image"]], "tag": row["tag"], "kind": row["kind"], "p": number(row.get("probability")),
             "score": number(row.get("score"))} for row in rows if row.get("kind") in ("missing", "extra")]


def duplicate_items(groups):
    """Items for the groups whose tags disagree: groups are (image names, their tags or None, the
    tags that differ, identical files?). For each tag that differs, the change that makes the group
    agree by the majority (ties: add it): add it to the pictures without it, or take it off the
    pictures with it. Groups with the widest disagreement first."""
    items = []
    for names, tags, differ, _ in groups:
        for tag in differ:
            having = [name for name, image_tags in zip(names, tags) if image_tags and tag in image_tags]
            lacking = [name for name in names if name not in having]
            add = len(having) >= len(lacking)
            targets, others = (lacking, having) if add else (having, lacking)
            shown = targets[:MAIN_PICTURES // 2] + others[:MAIN_PICTURES - min(len(targets), MAIN_PICTURES // 2)]
            items.append({"targets": targets, "shown": sorted(shown, key=names.index),
                          "tag": tag, "kind": "missing" if add else "extra", "p": None,
                          "score": round(max(len(having), len(lacking)) / len(names), 4),
                          "note": f"on {len(having)} of the group's {len(names)} pictures"})
    return items


def current_tags(folder, names):
    """{image name: its tags} read from the folder's tag files (an image without one: [])."""
    folder = Path(folder)
    tags = {}
    for name in names:
        tag_file = find_tag_file(folder / name)
        tags[name] = read_tag_file(tag_file) if tag_file else []
    return tags


# ----------------------------------------------------------------------------- the page
EXPORTED_AS = {"suspects": "suspects", "suggestions": "suggestions", "duplicates": "duplicate-fixes"}


def review_data(title, summary, source, folder, page, items, vocabulary, tags_of=None):
    """The JSON a review page carries. source: a key of EXPORTED_AS; items come from the functions
    above, in the order the page opens on; vocabulary completes typed tags; tags_of maps each image
    name to its tags now (default: read from the folder's tag files)."""
    names = list(dict.fromkeys(name for item in items for key in ("shown", "targets") for name in item.get(key, [])))
    index = {name: position for position, name in enumerate(names)}
    folder = Path(folder)
    tags_of = current_tags(folder, names) if tags_of is None else tags_of
    images = [{"name": name, "src": relative_url(folder / name, page), "tags": list(tags_of.get(name) or [])}
              for name in names]
    packed = []
    for item in items:
        entry = {**item, "targets": [index[name] for name in item["targets"]]}
        if "shown" in item:
            entry["shown"] = [index[name] for name in item["shown"]]
        packed.append(entry)
    return {"kind": "review", "title": title, "summary": summary, "source": source, "images": images,
            "items": packed, "vocabulary": sorted(set(vocabulary)),
            "export_name": f"{folder.resolve().name}.{EXPORTED_AS[source]}.csv",  # the download names its folder
            "store_key": str(Path(page).resolve())}


def write_review_page(page, title, summary, source, folder, items, vocabulary, tags_of=None, extra=None):
    """Write the review page atomically (common/pages.py); extra: more of the page's data (another
    source's own view, such as the duplicate groups). Returns its size in bytes."""
    data = review_data(title, summary, source, folder, page, items, vocabulary, tags_of)
    return write_page(page, {**(extra or {}), **data})

