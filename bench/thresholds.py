"""Which threshold calibration helps on unseen items: ways of choosing per-tag thresholds on the
validation images, judged on the test items of the quality suite's runs.

    python bench/quality.py --suite --keep runs/     # trains and keeps every set and model
    python bench/thresholds.py runs/

For each kept train.py model it predicts its validation images (the ones split.json names) and
the test items, undoes the thresholds folded into the model, then chooses thresholds on the
validation predictions in each way below and scores them on the test items:

    flat 0.5                 no calibration
    shared for micro         one threshold for every tag, the best for micro-F1 on validation
    shared for both          one threshold for every tag, the best for micro-F1 + macro-F1
    per-tag, prior K         each tag's own best threshold, trusted in proportion to
                             positives / (positives + K) and otherwise pulled to the shared one
                             "for both" (K = 0: each tag's own, however few its positives)
    per-tag, prior 5, micro  the same, pulled to the shared one for micro-F1 (the earlier default)
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from common.checkpoint import load_checkpoint  # noqa: E402
from common.dataset import collate_readable  # noqa: E402
from common.folder_scan import multi_hot, read_tags_of, scan_folder  # noqa: E402
from common.inference import Tagger  # noqa: E402
from common.metrics import CALIBRATION_PRIOR_POSITIVES, calibrate_thresholds, evaluate  # noqa: E402

PRIORS = (0, 2, 5, CALIBRATION_PRIOR_POSITIVES, 50)


def predictions(tagger, folder, names=None):
    """(targets, probabilities before the folded thresholds) for the tagged images of a folder."""
    tags_of = read_tags_of(scan_folder(folder))
    if names is not None:
        tags_of = {path: tags for path, tags in tags_of.items() if path.name in names}
    paths = list(tags_of)
    probabilities = np.zeros((len(paths), len(tagger.tags)))
    for batch in DataLoader(tagger.dataset(paths), batch_size=64, collate_fn=collate_readable):
        probabilities[batch.indices.numpy()] = tagger.probabilities(batch.images).numpy()
    folded = np.array(tagger.checkpoint["calibration"]["thresholds"]).clip(1e-4, 1 - 1e-4)
    logits = np.log(probabilities.clip(1e-7, 1 - 1e-7) / (1 - probabilities.clip(1e-7, 1 - 1e-7)))
    unfolded = 1 / (1 + np.exp(-(logits + np.log(folded / (1 - folded)))))
    return multi_hot(list(tags_of.values()), tagger.tags), unfolded


def strategies(targets, probabilities):
    tag_count = targets.shape[1]
    chosen = {"flat 0.5": np.full(tag_count, 0.5)}
    for shared_for in ("micro", "both"):
        chosen[f"shared for {shared_for}"] = calibrate_thresholds(targets, probabilities, prior_positives=np.inf,
                                                                  shared_for=shared_for)
    for prior in dict.fromkeys(PRIORS):
        default = " (the default)" if prior == CALIBRATION_PRIOR_POSITIVES else ""
        chosen[f"per-tag, prior {prior}{default}"] = calibrate_thresholds(targets, probabilities, prior)
    chosen["per-tag, prior 5, micro"] = calibrate_thresholds(targets, probabilities, 5, shared_for="micro")
    return chosen


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="the folder given to bench/quality.py --keep")
    args = parser.parse_args()
    scores = {}  # (mode, set) -> strategy -> list of (micro, macro)
    for run in sorted(path for path in args.runs.iterdir() if (path / "multitag-trainer" / "model.pth").exists()):
        mode, set_name, _ = run.name.split("-")
        model = run / "multitag-trainer" / "model.pth"
        tagger = Tagger(load_checkpoint(model), torch.device("cpu"))
        split = json.loads(model.with_name("model.split.json").read_text())
        validation = predictions(tagger, run / "train", {Path(name).name for name in split["validation"]})
        test = predictions(tagger, run / "test")
        for name, thresholds in strategies(*validation).items():
            result = evaluate(*test, thresholds)
            scores.setdefault((mode, set_name), {}).setdefault(name, []).append(
                (result["micro_f1"], result["macro_f1"]))
        print(f"{run.name}: {len(validation[0])} validation, {len(test[0])} test pictures", flush=True)
    names = list(next(iter(scores.values())))
    print("\ntest micro-F1 / macro-F1 (mean over seeds) of thresholds chosen on the validation images")
    print("| strategy | " + " | ".join(f"{mode} {set_name}" for mode, set_name in scores) + " | mean |")
    print("|---" * (len(scores) + 2) + "|")
    for name in names:
        cells = [np.mean(scores[key][name], axis=0) for key in scores]
        overall = np.mean(cells, axis=0)
        print(f"| {name} | " + " | ".join(f"{micro:.3f} / {macro:.3f}" for micro, macro in cells)
              + f" | {overall[0]:.3f} / {overall[1]:.3f} |")
    flat = {key: np.mean(scores[key]["flat 0.5"], axis=0) for key in scores}
    for name in names[1:]:
        better = [key for key in scores if np.all(np.mean(scores[key][name], axis=0) > flat[key])]
        print(f"{name}: beats a flat 0.5 in both micro- and macro-F1 on {len(better)} of {len(scores)}")


if __name__ == "__main__":
    main()
