"""The audit's suspects: image-tag pairs ranked by how likely their label is wrong, the suspects CSV
that the audit, the report pages and people write, and applying (and undoing) the fixes a person
accepted. A leaf of the package: it imports no other training module, so that the training loop,
the pages and prepare.py's fix and undo use it without the audit's training (common/audit.py).

Nothing changes a tag file but apply_fixes, which writes only the rows a person accepted, each
sidecar atomically, after writing an undo file that undo_fixes replays.
"""

import csv
import datetime
import json
import warnings
from pathlib import Path

import numpy as np

from common.choices import RANKERS
from common.errors import UserError
from common.files import atomic_write, write_text_atomically
from common.tagfiles import decode_tag_bytes, default_tag_file, edit_tag_file, find_tag_file, parse_tags

SUSPECT_COLUMNS = ("image", "tag", "kind", "given", "probability", "score", "accept")
ACCEPTED = {"yes", "y", "x", "1", "true", "accept", "accepted", "ok"}


# ----------------------------------------------------------------------------- ranking
def rank_suspects(targets, probabilities, method="context", fold_of=None):
    """All image-tag pairs, most suspicious first, as (image rows, tag columns, scores, flagged,
    judged probabilities). Rows of NaN (unreadable images) are left out. The methods:

    context     each tag's probability is judged again together with the image's other tags
                (context_probabilities), then pairs are ranked by score = 1 - the probability of
                the label as written
    cleanlab    cleanlab's confident-learning issues first, then the rest, each by score
    confidence  by score alone
    """
    if method not in RANKERS:
        raise UserError(f"unknown ranking method {method!r}: choose one of {', '.join(RANKERS)}")
    targets = np.asarray(targets, dtype=bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    readable = ~np.isnan(probabilities).any(axis=1)
    if method == "context" and readable.sum() >= 4:
        judged = probabilities.copy()
        judged[readable] = context_probabilities(targets[readable], probabilities[readable],
                                                 None if fold_of is None else fold_of[readable])
        probabilities = judged
    scores = np.where(targets, 1.0 - probabilities, probabilities)
    flagged = np.zeros(targets.shape, dtype=bool)
    if method == "cleanlab" and readable.sum() >= 2:
        flagged[readable] = confident_learning_issues(targets[readable], probabilities[readable])
    rows, columns = np.nonzero(np.broadcast_to(readable[:, None], targets.shape))
    pair_scores, pair_flagged = scores[rows, columns], flagged[rows, columns]
    order = np.lexsort((rows, -pair_scores, ~pair_flagged))  # flagged first, then by score; ties by image
    rows, columns = rows[order], columns[order]
    return rows, columns, pair_scores[order], pair_flagged[order], probabilities[rows, columns]


CONTEXT_PARTNERS = 64  # tags whose labels help judge a tag: those most often on the same images


def context_probabilities(targets, probabilities, fold_of=None, folds=4, seed=0):
    """Each image-tag probability judged again in the light of the image's other tags: for each tag,
    a logistic regression from the model's logit for it and the image's labels of the
    CONTEXT_PARTNERS tags that most often share an image with it, fitted on the other folds and
    applied to each fold (a label never judges itself). Tags that go together (cat_ears and
    animal_ears, or a digit and "even") then speak for each other, and each tag's probabilities
    come out calibrated, so that scores compare across tags. The partners keep the cost at
    tags x folds small fits, whatever the size of the vocabulary."""
    import scipy.sparse  # here, with the fitting libraries: the CSV and the fixes need none of them
    from sklearn.linear_model import LogisticRegression

    from common.split import assign_folds

    count, tag_count = targets.shape
    if fold_of is None:
        fold_of = assign_folds(targets, min(folds, count), seed)
    clipped = np.clip(probabilities, 1e-6, 1 - 1e-6)
    logits = np.log(clipped) - np.log1p(-clipped)
    labels = scipy.sparse.csr_matrix(targets.astype(np.float32))
    together = (labels.T @ labels).toarray() if tag_count <= 4096 else None  # images shared by two tags
    judged = np.empty_like(probabilities)
    for tag in range(tag_count):
        shared = together[tag].copy() if together is not None else (labels.T @ labels[:, tag]).toarray().ravel()
        shared[tag] = 0  # the label itself is what is judged
        partners = np.argsort(-shared, kind="stable")[:CONTEXT_PARTNERS]
        partners = partners[shared[partners] > 0]
        features = np.hstack([targets[:, partners].astype(np.float32), logits[:, [tag]]])
        for fold in np.unique(fold_of):
            held_out = fold_of == fold
            known = targets[~held_out, tag]
            if known.all() or not known.any():  # nothing to learn from: the base rate
                judged[held_out, tag] = known.mean() if len(known) else probabilities[held_out, tag]
                continue
            model = LogisticRegression(C=1.0, max_iter=300).fit(features[~held_out], known)
            judged[held_out, tag] = model.predict_proba(features[held_out])[:, 1]
    return judged


def confident_learning_issues(targets, probabilities):
    """cleanlab's per-tag label issues (confident learning, one-vs-rest for each tag), as an
    (images x tags) boolean matrix. Tags that every image carries, or none does, give no evidence."""
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class

    flagged = np.zeros(targets.shape, dtype=bool)
    varied = np.flatnonzero(targets.any(0) & ~targets.all(0))
    if len(varied) == 0:
        return flagged
    labels = [np.flatnonzero(row).tolist() for row in targets[:, varied]]
    with warnings.catch_warnings():  # a warning per rare tag ("may not flag all label issues"): it flags fewer
        warnings.simplefilter("ignore", UserWarning)
        flagged[:, varied] = find_multilabel_issues_per_class(labels=labels, pred_probs=probabilities[:, varied],
                                                              low_memory=len(targets) > 50_000)
    return flagged


def suspect_rows(names, vocabulary, targets, probabilities, method="context", limit=1000, fold_of=None):
    """The `limit` most suspicious pairs as CSV rows (SUSPECT_COLUMNS), accept left empty. The
    probability is the one the pair was judged by (for "context", the model's corrected by the
    image's other tags)."""
    images, tags, scores, _, judged = rank_suspects(targets, probabilities, method, fold_of)
    rows = []
    for image, tag, score, probability in zip(images[:limit], tags[:limit], scores[:limit], judged[:limit]):
        given = int(bool(targets[image, tag]))
        rows.append({"image": names[image], "tag": vocabulary[tag], "kind": "extra" if given else "missing",
                     "given": given, "probability": round(float(probability), 4),
                     "score": round(float(score), 4), "accept": ""})
    return rows


def default_suspects_path(folder):
    """DIR.suspects.csv beside the folder (never inside it, where it would look like a tag file)."""
    folder = Path(folder).resolve()
    return folder.with_name(f"{folder.name}.suspects.csv")


def read_suspects(path):
    """The rows of a suspects CSV, in its order; a UserError names a file that is not one."""
    path = Path(path)
    try:
        reader = csv.DictReader(decode_tag_bytes(path.read_bytes()).splitlines())
        rows = list(reader)
    except OSError as error:
        raise UserError(f"{path} cannot be read ({error.strerror or error})") from None
    missing = [column for column in ("image", "tag", "kind", "accept") if column not in (reader.fieldnames or [])]
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)} column(s): it is not a suspects CSV from `prepare.py "
                        "audit` or a report page")
    return rows


def write_suspects(path, rows):
    with atomic_write(path, "w", newline="") as file:
        writer = csv.DictWriter(file, SUSPECT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


# ----------------------------------------------------------------------------- fixes
def read_accepted(path):
    """The rows of a suspects CSV whose `accept` cell says yes, checked; a UserError names the line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: give the suspects CSV written by `prepare.py audit` (or saved from "
                        "a report page), with the rows to apply marked in its accept column")
    accepted = []
    for line, row in enumerate(read_suspects(path), start=2):
        if (row.get("accept") or "").strip().lower() not in ACCEPTED:
            continue
        image, tag = (row.get("image") or "").strip(), (row.get("tag") or "").strip()
        if row["kind"] not in ("missing", "extra") or not image or not tag:
            raise UserError(f"{path}, line {line}: kind must be missing or extra, with an image and a tag; "
                            f"found {row['kind']!r}, {row['image']!r}, {row['tag']!r}")
        accepted.append({"line": line, "image": image, "tag": tag, "kind": row["kind"]})
    return accepted


def plan_fixes(folder, accepted):
    """{tag file: (tags to add, tags to remove)} for the accepted rows; rows already applied are
    counted, and a row naming an image that is not in the folder is an error."""
    folder = Path(folder)
    plan, already = {}, 0
    for row in accepted:
        image = folder / row["image"]
        if not image.is_file() or not image.resolve().is_relative_to(folder.resolve()):
            raise UserError(f"line {row['line']} names {row['image']}, which is not an image in {folder}: is this "
                            "the folder the audit looked at?")
        tag_file = find_tag_file(image) or default_tag_file(image)
        add, remove = plan.setdefault(tag_file, ([], []))
        current = parse_tags(decode_tag_bytes(tag_file.read_bytes())) if tag_file.exists() else []
        if row["kind"] == "missing":
            already += row["tag"] in current
            if row["tag"] not in current and row["tag"] not in add:
                add.append(row["tag"])
        else:
            already += row["tag"] not in current
            if row["tag"] in current and row["tag"] not in remove:
                remove.append(row["tag"])
    return {path: change for path, change in plan.items() if change[0] or change[1]}, already


def undo_file_for(folder):
    """A new undo file beside the folder: NAME.undo-YYYYmmdd-HHMMSS.json (never an existing one)."""
    folder = Path(folder).resolve()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = folder.with_name(f"{folder.name}.undo-{stamp}{f'-{attempt}' if attempt else ''}.json")
        if not candidate.exists():
            return candidate
    raise UserError(f"could not find a free name for an undo file beside {folder}")


def apply_fixes(folder, suspects_path, dry_run=False):
    """Apply the accepted rows of a suspects CSV to the folder's tag files. The undo file (every
    tag file's text before and after) is written first; then each tag file, atomically. Returns
    (changed tag files, undo file or None)."""
    accepted = read_accepted(suspects_path)
    if not accepted:
        raise UserError(f"no row of {suspects_path} is marked in its accept column (yes, y, x or 1): mark the "
                        "fixes to apply, in a spreadsheet or on the report page, then run this again")
    plan, already = plan_fixes(folder, accepted)
    changes = []
    for tag_file, (add, remove) in plan.items():
        before = decode_tag_bytes(tag_file.read_bytes()) if tag_file.exists() else None
        changes.append({"tag_file": str(tag_file), "before": before, "after": edit_tag_file(tag_file, add, remove,
                                                                                            dry_run=True),
                        "added": add, "removed": remove})
    verb = "would change" if dry_run else "changed"
    summary = (f"fix: {verb} {len(changes)} tag file(s) in {folder} from {len(accepted)} accepted row(s) of "
               f"{suspects_path}: {sum(len(c['added']) for c in changes)} tag(s) added, "
               f"{sum(len(c['removed']) for c in changes)} removed"
               + (f"; {already} row(s) already applied" if already else ""))
    if dry_run or not changes:
        for change in changes:
            print(f"  {change['tag_file']}: add {', '.join(change['added']) or '-'} | remove "
                  f"{', '.join(change['removed']) or '-'}")
        print(summary)
        return changes, None
    undo_path = undo_file_for(folder)
    write_text_atomically(undo_path, json.dumps({"folder": str(Path(folder).resolve()), "suspects": str(suspects_path),
                                                 "changes": changes}, ensure_ascii=False, indent=1))
    for change in changes:
        write_text_atomically(change["tag_file"], change["after"])
    print(f"{summary}\nundo file: {undo_path} (`python prepare.py undo {undo_path}` puts every tag file back)")
    return changes, undo_path


def undo_fixes(undo_path):
    """Put back the tag files an apply_fixes run changed, unless a file changed again since (named)."""
    undo_path = Path(undo_path)
    try:
        record = json.loads(undo_path.read_text(encoding="utf-8"))
        changes = record["changes"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{undo_path} is not an undo file written by `prepare.py fix` ({error})") from None
    restored, changed_since = 0, []
    for change in changes:
        tag_file = Path(change["tag_file"])
        now = decode_tag_bytes(tag_file.read_bytes()) if tag_file.exists() else None
        if now == change["before"]:
            continue  # already put back (an interrupted undo run again)
        if now != change["after"]:
            changed_since.append(str(tag_file))
            continue
        if change["before"] is None:
            tag_file.unlink()
        else:
            write_text_atomically(tag_file, change["before"])
        restored += 1
    print(f"undo: restored {restored} tag file(s) from {undo_path}" +
          (f"; left {len(changed_since)} that changed again since: {', '.join(changed_since[:10])}"
           if changed_since else ""))
    return restored, changed_since
