"""Does the label audit find label errors? Known errors are put into real sets, and the audit is
asked to find them.

    python bench/audit.py                                  # every set, from scratch and fine-tuning
    python bench/audit.py --sets digits --modes scratch --keep /tmp/audit   # one set; keep its files

For each set of bench/real_sets.py (digit mosaics, Font Awesome glyphs, Debian theme icons) the
training part is written (1,000 pictures from scratch, 500 fine-tuning the pretrained stand-in of
bench/pretrain.py), then one true tag is removed from 5 % of its images ("missing") and one tag the
image does not have is added to another 5 % ("extra"): N injected errors. Then, each in a fresh
process of its own, one after the other:

    audit       python prepare.py audit (4 folds of 5 epochs, train.py's defaults otherwise)
    training    python train.py (10 epochs, its defaults): the yardstick for the audit's time

and three rankings of every image-tag pair are scored:

    context     the audit's default: each out-of-fold probability judged again with the image's
                other tags and the labels of its look-alikes (common/suspects.py)
    cleanlab    cleanlab's multi-label confident learning on the out-of-fold probabilities: its
                issues first, then the rest by disagreement
    confidence  by disagreement alone: 1 - the out-of-fold probability of the label as written

by two figures:

    found in 2N     the share of the injected errors among the 2N most suspicious pairs
    precision at N  the share of the N most suspicious pairs that are injected errors

The sets' own labels are not perfect (words of icon names, search terms of glyphs), so a "wrong"
suspect can be a real error the benchmark does not know about: precision is a lower bound.
Goal: found in 2N >= 70 % on at least two sets, in at most k + 1 = 5 training runs' time.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.pretrain import default_weights_path  # noqa: E402
from bench.real_sets import SETS, grouping_flags, write_set  # noqa: E402
from common.suspects import RANKERS, rank_suspects  # noqa: E402
from common.folder_scan import build_vocabulary, read_tags_of, scan_folder, tag_matrix  # noqa: E402
from common.tagfiles import format_tags  # noqa: E402

ARCH, IMAGE_SIZE, FOLDS, AUDIT_EPOCHS, TRAIN_EPOCHS = "resnet18", 64, 4, 5, 10
TRAIN_IMAGES = {"scratch": 1000, "finetune": 500}
ERROR_SHARE = 0.05  # of the images lose a tag, and as many others gain a wrong one
GOAL_FOUND, GOAL_SETS, GOAL_TIME = 0.70, 2, FOLDS + 1


def inject_errors(folder, seed, share=ERROR_SHARE):
    """Remove one true tag from `share` of the images (5 %) and add one absent tag to as many others,
    rewriting their sidecars; returns the injected errors as {(image name, tag): kind}."""
    rng = np.random.default_rng(seed)
    tags_of = {image.name: tags for image, tags in read_tags_of(scan_folder(folder)).items()}
    vocabulary = sorted({tag for tags in tags_of.values() for tag in tags})
    tagged = sorted(name for name, tags in tags_of.items() if tags)
    count = max(1, round(share * len(tags_of)))
    chosen = rng.permutation(tagged)[:2 * count]
    injected = {}
    for position, name in enumerate(chosen):
        tags = list(tags_of[name])
        if position < count:
            tag = tags[rng.integers(len(tags))]
            tags.remove(tag)
            injected[(name, tag)] = "missing"
        else:
            absent = [tag for tag in vocabulary if tag not in tags]
            tag = absent[rng.integers(len(absent))]
            tags.append(tag)
            injected[(name, tag)] = "extra"
        (folder / f"{name}.txt").write_text(format_tags(tags), encoding="utf-8")
    return injected


def timed(*command):
    started = time.perf_counter()
    subprocess.run([sys.executable, *map(str, command)], check=True, cwd=REPOSITORY,
                   env={**os.environ, "TQDM_DISABLE": "1"}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def score_ranking(ranked, injected):
    """ranked: [(image, tag, kind)], most suspicious first."""
    count = len(injected)
    hits = [injected.get((image, tag)) == kind for image, tag, kind in ranked]
    return {"found_2n": sum(hits[:2 * count]) / count, "precision_n": sum(hits[:count]) / count}


def ranked_pairs(names, vocabulary, targets, probabilities, method, fold_of):
    images, tags, _, _, _ = rank_suspects(targets, probabilities, method, fold_of)
    return [(names[image], vocabulary[tag], "extra" if targets[image, tag] else "missing")
            for image, tag in zip(images, tags)]


def run_set(set_name, mode, seed, work, weights, epochs):
    write_set(set_name, work, seed, TRAIN_IMAGES[mode], 0)
    folder = work / "train"
    injected = inject_errors(folder, seed)
    (work / "injected.json").write_text(json.dumps([[image, tag, kind] for (image, tag), kind in injected.items()]))
    # an item's pictures share a fold, as they share a side of the test split
    flags = ["--arch", ARCH, "--weights", weights, "--image-size", IMAGE_SIZE, "--seed", seed,
             *grouping_flags(set_name)]
    suspects = work / "suspects.csv"
    # The audit as a user runs it (the default ranking, context), keeping its folds' predictions,
    # from which the other two rankings are made here by the audit's own functions
    audit_seconds = timed("prepare.py", "audit", folder, "--output", suspects, "--folds", FOLDS, "--epochs",
                          epochs, "--top", 10**9, "--keep-folds", *flags)
    train_seconds = timed("train.py", "--data", folder, "--model", work / "model.pth", "--epochs", TRAIN_EPOCHS,
                          "--yes", *flags)
    result = {"set": set_name, "mode": mode, "seed": seed, "injected": len(injected), "audit_s": audit_seconds,
              "train_s": train_seconds}
    with open(suspects, newline="", encoding="utf-8") as file:
        result["context"] = score_ranking([(row["image"], row["tag"], row["kind"]) for row in csv.DictReader(file)],
                                          injected)
    tags_of = read_tags_of(scan_folder(folder))
    names, vocabulary = [path.name for path in tags_of], build_vocabulary(tags_of.values())
    targets = tag_matrix(list(tags_of.values()), vocabulary).toarray().astype(bool)
    fold_of = np.full(len(names), -1)  # the folds the audit trained on (related images share one)
    probabilities = np.full(targets.shape, np.nan)
    for fold in range(FOLDS):
        with np.load(suspects.with_suffix(".folds") / f"fold-{fold + 1}-of-{FOLDS}.npz") as kept:
            probabilities[kept["rows"]], fold_of[kept["rows"]] = kept["probabilities"], fold
    assert (fold_of >= 0).all(), "a fold file of the audit is missing"
    for method in ("cleanlab", "confidence"):
        ranked = ranked_pairs(names, vocabulary, targets, probabilities, method, fold_of)
        result[method] = score_ranking(ranked, injected)
    return result | {"images": len(names), "tags": len(vocabulary)}


def print_table(results):
    print(f"\n{'set':<12} {'mode':<9} {'images':>6} {'tags':>4} {'N':>4} | "
          + " | ".join(f"{method + ': found in 2N':>22} {'prec@N':>6}" for method in RANKERS)
          + f" | {'audit':>6} {'train':>6} {'ratio':>5}")
    for row in results:
        print(f"{row['set']:<12} {row['mode']:<9} {row['images']:>6} {row['tags']:>4} {row['injected']:>4} | "
              + " | ".join(f"{row[method]['found_2n']:>22.1%} {row[method]['precision_n']:>6.1%}"
                           for method in RANKERS)
              + f" | {row['audit_s']:>5.0f}s {row['train_s']:>5.0f}s {row['audit_s'] / row['train_s']:>5.2f}")
    for method in RANKERS:
        found = [row[method]["found_2n"] for row in results]
        reached = sum(value >= GOAL_FOUND for value in found)
        print(f"{method}: mean found in 2N {np.mean(found):.1%}, mean precision at N "
              f"{np.mean([row[method]['precision_n'] for row in results]):.1%}; {reached} of {len(found)} runs reach "
              f"{GOAL_FOUND:.0%}")
    ratios = [row["audit_s"] / row["train_s"] for row in results]
    print(f"audit time: {np.mean(ratios):.2f} training runs on average, at most {max(ratios):.2f} "
          f"(goal: at most {GOAL_TIME})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=SETS, default=["digits", "fontawesome", "icons"])
    parser.add_argument("--modes", nargs="+", choices=("scratch", "finetune"), default=["scratch", "finetune"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=Path, default=default_weights_path(ARCH),
                        help="pretrained stand-in for fine-tuning (bench/pretrain.py writes it)")
    parser.add_argument("--epochs", type=int, default=AUDIT_EPOCHS, help="epochs per fold of the audit")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", type=Path, help="keep each set, its injected errors and suspects in this folder")
    parser.add_argument("--results", type=Path, help="only print the table of an earlier --out file")
    args = parser.parse_args()
    if args.results:
        return print_table(json.loads(args.results.read_text()))
    results = []
    started = time.perf_counter()
    for mode in args.modes:
        weights = "none" if mode == "scratch" else str(args.weights)
        if mode == "finetune" and not Path(weights).is_file():
            raise SystemExit(f"no pretrained stand-in at {weights}: run python bench/pretrain.py first")
        for set_name in args.sets:
            with tempfile.TemporaryDirectory() as temporary:
                work = args.keep / f"{mode}-{set_name}" if args.keep else Path(temporary)
                results.append(run_set(set_name, mode, args.seed, work, weights, args.epochs))
                print(json.dumps(results[-1]), flush=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
    print(f"\n{ARCH}, {IMAGE_SIZE} px; audit: {FOLDS} folds x {args.epochs} epochs; training: {TRAIN_EPOCHS} epochs; "
          f"{(time.perf_counter() - started) / 60:.0f} min in all")
    print_table(results)


if __name__ == "__main__":
    main()
