"""What a finished training run leaves for people to read beside the model: the report page
(NAME.report.html), the review page of the validation labels it doubts (NAME.suspects.html), the
per-tag table (NAME.report.csv) and the plots (NAME.curves.png, NAME.pr.png).
train.py hands write_run_outputs to the training loop's finish(), which calls it before the
final save; the loop itself knows nothing of pages or plots."""

import datetime
from pathlib import Path

from common.duplicates import default_duplicates_path
from common.files import write_rows
from common.pages import ValidationShown, report_data, write_page
from common.plots import plot_precision_recall, plot_training_curves
from common.review import relative_url, suspect_items, write_review_page
from common.split import LEAKED, optimistic_validation_warning
from common.suspects import default_suspects_path, suspect_rows

REPORT_COLUMNS = ("tag", "support", "ap", "precision", "recall", "f1", "threshold")  # NAME.report.csv
SUSPECTS_SHOWN = 1000  # the validation pairs on NAME.suspects.html, most doubted first


def write_run_outputs(run, validation=None):
    """Every file of the run's report; validation: the final model's ValidationResults, or None
    without a validation set (then the page holds the curves and the summary alone)."""
    write_report_page(run, validation)
    if validation is not None:
        write_rows(run.outputs["report.csv"], validation.tag_rows, REPORT_COLUMNS)
        plot_precision_recall(validation.targets, validation.probabilities, run.vocabulary, run.outputs["pr.png"])
    plot_training_curves(run.history, run.outputs["curves.png"])


def write_report_page(run, validation=None):
    """NAME.report.html: the curves, and with a validation set its per-tag table and each tag's
    worst images; links to the review pages of the labels the model doubts (NAME.suspects.html, a
    quick look) and of the folder's audit and duplicates, when they exist."""
    shown, links = None, []
    if validation is not None:
        names = [run.split_names["validation"][position] for position in validation.positions]
        shown = ValidationShown(names, [Path(run.args.data) / name for name in names], validation.targets,
                                validation.probabilities, validation.thresholds, validation.tag_rows)
        links.append(write_quick_look(run, names, validation))
    audit, duplicates = (default(run.args.data).with_suffix(".html")
                         for default in (default_suspects_path, default_duplicates_path))
    for page, text, note in ((audit, "the audit's suspects", "(prepare.py audit: every image judged by a model that "
                                                            "never saw it)"),
                             (duplicates, "near-duplicates whose tags disagree", "(prepare.py duplicates)")):
        if page.is_file():
            links.append((relative_url(page, run.outputs["report.html"]), text, note))
    best = run.best or {}
    scores = ", ".join(f"{name} {best[name]:.3f}" for name in ("mAP", "micro_f1", "macro_f1") if name in best)
    refitted = (f", then the held-out images trained too, to epoch {best['epoch']}" if "validated_epoch" in best
                else "")
    if refitted:
        best = {**best, "epoch": best["validated_epoch"]}
    groups = run.split_names.get("groups", [])
    grouped = f"; {len(groups)} groups of related images ({sum(map(len, groups))} images) kept on one side"
    summary = (f"{run.args.arch} at {run.args.image_size} px, weights {run.args.weights}, {len(run.history)} epoch(s) "
               f"on {len(run.split_names['train'])} images of {run.args.data}; best epoch {best.get('epoch')}"
               f"{' (' + scores + ' at a 0.5 threshold)' if scores else ''}{refitted}; "
               f"{len(shown.names) if shown else 0} validation images"
               f"{grouped if groups else ''}; {datetime.datetime.now():%Y-%m-%d %H:%M}")
    model = run.outputs["model"]
    data = report_data(f"{model.name}: training report", run.history, run.vocabulary, shown, links, summary)
    if run.split_names.get(LEAKED):
        data["warning"] = optimistic_validation_warning(run.split_names[LEAKED], len(run.split_names["validation"]))
    size = write_page(run.outputs["report.html"], data)
    print(f"wrote the run report {run.outputs['report.html']} ({size / 1e6:.1f} MB): open it in a browser")


def write_quick_look(run, names, validation):
    """NAME.suspects.html: the validation pairs whose labels the final model doubts most, in the
    review viewer; returns the report's link to it. (`prepare.py audit` judges every image.)"""
    rows = suspect_rows(names, run.vocabulary, validation.targets, validation.probabilities, limit=SUSPECTS_SHOWN)
    folder, page = Path(run.args.data), run.outputs["suspects.html"]
    summary = (f"The {len(names)} validation images' labels that {run.outputs['model'].name} doubts most (a quick "
               "look: `prepare.py audit` judges every image). Accept (a) or reject (r) each, save the decisions (e), "
               f"then `python prepare.py fix {folder} --suspects SAVED.csv`.")
    write_review_page(page, f"{folder.name}: labels {run.outputs['model'].name} doubts", summary, "suspects", folder,
                      suspect_items(rows), run.vocabulary)
    return relative_url(page, run.outputs["report.html"]), "the validation labels this model doubts", \
        "(a quick look at the held-out images)"

