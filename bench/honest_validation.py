"""Is the validation mAP a run reports the mAP it gets on pictures it never saw? With near-duplicates
and renditions of one subject in a folder, only if they stay on one side of the split.

    python bench/honest_validation.py                   # every set, seeds 0-2 (about 75 min)
    python bench/honest_validation.py --sets renditions --seeds 0

The sets (bench/real_sets.py; every test item is one the training never saw, in any rendition):

    digits+copies  the suite's digit mosaics (1,000 training pictures) with changed copies of 45 %
                   of them under random names (1.72 copies each: resized, re-encoded, cropped,
                   brightened or framed; bench/duplicates.py makes them)
    icons+copies   the same for the suite's Debian theme icons
    renditions     Debian theme icons, each icon name drawn by up to three themes at 16, 22, 32 and
                   48 pixels (up to 12 renditions of one concept, each scaled to 64 px); the files are
                   named NAME_NUMBER.png
    digits         the suite's digit mosaics as they are: no duplicates
    icons          the suite's theme icons as they are: each icon name drawn by up to three themes

Each contestant is `python train.py` (resnet18 from scratch at 64 px, 10 epochs, its defaults
otherwise) in a fresh process, then `python infer.py --csv` on the test pictures:

    grouping off   --group-duplicates off: a split by pictures, as before groups existed
    default        near-duplicates found and kept together (train.py's default)
    group-by pattern  (renditions, icons+copies) the default and --group-by '^(.+)_\\d+\\.png$', which
                   names the concept of each original; its copies, under random names, join it as
                   near-duplicates

For each it prints the validation mAP the run reports (its best epoch's), the test mAP, their gap,
the training time, and the seconds train.py spent finding groups (its "groups:" line), as means
over the seeds with their standard errors.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.duplicates import add_changed_copies  # noqa: E402
from bench.quality import score  # noqa: E402
from bench.real_sets import NAMED_BY_ITEM, RENDITION_PATTERN, write_set  # noqa: E402
from common.checkpoint import load_checkpoint  # noqa: E402

ARCH, IMAGE_SIZE, EPOCHS = "resnet18", 64, 10
SETS = {  # name: (base set, training pictures, test pictures, changed copies added?)
    "digits+copies": ("digits", 1000, 400, True),
    "icons+copies": ("icons", 1000, 400, True),
    "renditions": ("renditions", 1500, 500, False),
    "digits": ("digits", 1000, 400, False),
    "icons": ("icons", 1000, 400, False),
}
CONTESTANTS = {"grouping off": ["--group-duplicates", "off"], "default": [],
               "group-by pattern": ["--group-by", RENDITION_PATTERN]}


def contestants_of(set_name, chosen):
    return [name for name in chosen if name != "group-by pattern" or SETS[set_name][0] in NAMED_BY_ITEM]


def run(script, *arguments):
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPOSITORY / script), *map(str, arguments)], check=True,
                            capture_output=True, text=True, cwd=REPOSITORY, env={**os.environ, "TQDM_DISABLE": "1"})
    return time.perf_counter() - started, result.stdout


def copies_across(split, original_of):
    """How many validation pictures have their original, or a copy of their original, in training."""
    def original(name):
        return original_of.get(Path(name).name, Path(name).name)

    trained = {original(name) for name in split["train"]}
    return sum(original(name) in trained for name in split["validation"])


def train_and_test(train_dir, test_dir, work, flags, seed, original_of):
    model = work / "model.pth"
    seconds, printed = run("train.py", "--data", train_dir, "--model", model, "--arch", ARCH, "--weights", "none",
                           "--image-size", IMAGE_SIZE, "--epochs", EPOCHS, "--seed", seed, "--yes", *flags)
    found = re.search(r"\(found in ([\d.]+) s\)|; ([\d.]+) s\)\n", printed)
    run("infer.py", "--input", test_dir, "--model", model, "--csv", work / "test.csv")
    with open(work / "test.csv", newline="") as file:
        rows = list(csv.reader(file))
    probabilities = {row[0]: [float(value) for value in row[1:]] for row in rows[1:]}
    checkpoint = load_checkpoint(model)
    test = score(test_dir, rows[0][1:], probabilities, checkpoint["thresholds"])
    split = json.loads((work / "model.split.json").read_text())
    return {"reported mAP": checkpoint["metrics"]["mAP"], "test mAP": test["mAP"], "train s": seconds,
            "groups s": float(next(value for value in found.groups() if value)) if found else float("nan"),
            "groups": len(split["groups"]), "grouped images": sum(map(len, split["groups"])),
            "leaked": split.get("validation_images_with_a_near_duplicate_in_training", 0),
            "copies across": copies_across(split, original_of) if original_of else None,
            "validation": len(split["validation"])}


def run_all(args):
    results = []
    for set_name in args.sets:
        base, train_count, test_count, copies = SETS[set_name]
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as temporary:
                work = args.keep / f"{set_name}-{seed}" if args.keep else Path(temporary)
                write_set(base, work, seed, train_count, test_count)
                original_of = add_changed_copies(work / "train", seed) if copies else {}
                for name in contestants_of(set_name, args.contestants):
                    own = work / name.replace(" ", "-")
                    own.mkdir(parents=True, exist_ok=True)
                    result = train_and_test(work / "train", work / "test", own, CONTESTANTS[name], seed, original_of)
                    results.append({"set": set_name, "seed": seed, "contestant": name, **result})
                    print(json.dumps(results[-1]), flush=True)
                    if args.out:
                        args.out.write_text(json.dumps(results, indent=1))
    return results


def mean_and_error(values):
    values = np.asarray(values, dtype=float)
    error = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f} ± {error:.3f}"


def print_tables(results):
    for set_name in dict.fromkeys(row["set"] for row in results):
        rows = [row for row in results if row["set"] == set_name]
        seeds = sorted({row["seed"] for row in rows})
        print(f"\n{set_name}: seeds {', '.join(map(str, seeds))}, {rows[0]['validation']} validation pictures "
              f"(means ± standard errors)")
        print("| contestant | reported val mAP | test mAP | gap | validation pictures with a copy in training | "
              "train s | finding groups | groups (pictures) |")
        print("|---|---|---|---|---|---|---|---|")
        for name in dict.fromkeys(row["contestant"] for row in rows):
            mine = [row for row in rows if row["contestant"] == name]
            gaps = [row["reported mAP"] - row["test mAP"] for row in mine]
            share = np.mean([row["groups s"] / row["train s"] for row in mine])
            known = [row["copies across"] for row in mine if row.get("copies across") is not None]
            found = f"{np.mean([row['leaked'] for row in mine]):.0f} found" if name == "grouping off" else ""
            seen = (f"{np.mean(known):.0f}" + (f" ({found})" if found else "") if len(known) == len(mine)
                    else found or "-")
            print(f"| {name} | {mean_and_error([row['reported mAP'] for row in mine])} | "
                  f"{mean_and_error([row['test mAP'] for row in mine])} | {mean_and_error(gaps)} | {seen} | "
                  f"{np.mean([row['train s'] for row in mine]):.0f} | "
                  f"{np.mean([row['groups s'] for row in mine]):.1f} s ({share:.1%}) | "
                  f"{np.mean([row['groups'] for row in mine]):.0f} "
                  f"({np.mean([row['grouped images'] for row in mine]):.0f}) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--contestants", nargs="+", choices=list(CONTESTANTS), default=list(CONTESTANTS))
    parser.add_argument("--out", type=Path, help="also write every result as JSON here")
    parser.add_argument("--keep", type=Path, help="keep every set and model in this folder")
    parser.add_argument("--results", type=Path, nargs="+", help="only print the tables of earlier --out files")
    args = parser.parse_args()
    if args.results:
        return print_tables([row for path in args.results for row in json.loads(path.read_text())])
    started = time.perf_counter()
    results = run_all(args)
    print(f"\n{(time.perf_counter() - started) / 60:.0f} min in all")
    print_tables(results)


if __name__ == "__main__":
    main()
