"""Tagging quality in a fixed budget: train.py's defaults against plain training loops, on real
pictures with human-written tags, from scratch and when fine-tuning from pretrained weights at
two distances from the task.

    python bench/quality.py --suite                 # every set and mode, seeds 0-2: bench/README.md's tables
    python bench/quality.py --suite --modes scratch --sets icons --seeds 0 --quick
    python bench/quality.py --suite --extra "bce=--loss bce"             # train.py with other flags too
    python bench/quality.py --suite --extra "finetune:lr1=--backbone-lr 1"   # ... when fine-tuning only
    python bench/quality.py --set digits --seed 2                      # one set, one seed, from scratch
    python bench/quality.py --results runs.json                        # the tables of an --out file again

The sets (bench/real_sets.py) are digit mosaics, Font Awesome glyphs, Debian theme icons, the
renditions of those icons at four sizes, and the icons tagged with their context folders alone
(a dozen dense tags); every test item is one that training never saw.
The modes: `scratch`; `far`, fine-tuning from bench/pretrain.py's stand-in for ImageNet
weights (Papirus application icons); `close`, from its stand-in that also learned Font
Awesome's brand logos, a task as close to the glyph sets as ImageNet is to photos. Fine-tuning
uses 500 training pictures per set (1,000 from scratch; --train changes both). Every contestant
trains resnet18 at 64 px, the plain loops for 10 epochs and train.py for its own (--epochs auto:
14 fine-tuning in bf16, else 10; --epochs N sets every contestant's), each in a fresh process of
its own, one after another, and is timed from that process's start to its exit:

    multitag-trainer  python train.py with its defaults, then python infer.py --csv on the test set
    plain loop        (from scratch) AdamW at 2e-3 with weight decay 1e-4, OneCycleLR, batch 64,
                      random horizontal flips, BCE, every training image, a flat 0.5 threshold
    plain fine-tune   the same at 1e-3 and batch 32, from the pretrained backbone with a new last layer
    head-only Adam    the original tool's recipe: the backbone frozen, Adam at 1e-3 on the last layer
    freeze-backbone   python train.py --freeze-backbone
    fp32              python train.py --precision fp32: the defaults on a CPU without bf16 units

Each set gets a table (means ± standard errors over the seeds), then each contestant its gain
over the plain loop of its mode, and each --extra its gain over the defaults, run by run (the
same set and seed), as mean ± standard error and per set. When train.py's held-out images
trained in its last epochs, a last table scores the thresholds it might have kept on the test
items. Timings are only comparable when nothing else runs.
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
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import models
from torchvision.transforms import v2

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.pretrain import default_weights_path  # noqa: E402
from bench.real_sets import SETS, grouping_flags, write_set  # noqa: E402
from common.checkpoint import load_checkpoint  # noqa: E402
from common.dataset import ImageTagDataset, collate_readable  # noqa: E402
from common.folder_scan import build_vocabulary, multi_hot, read_tags_of, scan_folder  # noqa: E402
from common.transforms import decode_transform, eval_transform, normalize_transform  # noqa: E402
from common.metrics import evaluate  # noqa: E402

ARCH, IMAGE_SIZE, EPOCHS = "resnet18", 64, 10
SCRATCH_TRAIN, FINETUNE_TRAIN, TEST = 1000, 500, 400  # pictures per set (at most)
PLAIN_WORKERS = min(4, os.cpu_count() or 1)  # decoding processes, as many as train.py uses by default
METRICS = ("mAP", "micro_f1", "macro_f1")
STAND_INS = ("far", "close")  # fine-tuning from bench/pretrain.py's stand-ins (--task far, --task close)
MODE_NAMES = {"scratch": "scratch", "far": "finetune", "close": "finetune-close"}


# ----------------------------------------------------------------------------- scoring
def truth_of(folder, tags):
    tags_of = read_tags_of(scan_folder(folder))
    return {image.name: row for image, row in zip(tags_of, multi_hot(list(tags_of.values()), tags))}


def score(folder, tags, probabilities_by_name, thresholds):
    truth = truth_of(folder, tags)
    names = sorted(truth)
    targets = np.array([truth[name] for name in names])
    probabilities = np.array([probabilities_by_name[name] for name in names])
    return {name: value for name, value in evaluate(targets, probabilities, thresholds).items() if name in METRICS}


def timed_process(*command, environment=None):
    """Run a Python script in a fresh process; returns its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *map(str, command)], check=True, cwd=REPOSITORY,
                   env={**os.environ, "TQDM_DISABLE": "1", **(environment or {})}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- contestants
def run_multitag_trainer(train_dir, test_dir, work, weights, flags, environment):
    """python train.py with its defaults (and `flags`), then python infer.py --csv, as a user runs them."""
    model = work / "model.pth"
    seconds = timed_process("train.py", "--data", train_dir, "--model", model, "--arch", ARCH, "--weights", weights,
                            "--image-size", IMAGE_SIZE, "--yes", *flags, environment=environment)
    timed_process("infer.py", "--input", test_dir, "--model", model, "--csv", work / "test.csv",
                  environment=environment)
    with open(work / "test.csv", newline="") as file:
        rows = list(csv.reader(file))
    tags = rows[0][1:]
    probabilities = {row[0]: [float(value) for value in row[1:]] for row in rows[1:]}
    checkpoint = load_checkpoint(model)
    result = {**score(test_dir, tags, probabilities, checkpoint["thresholds"]), "seconds": seconds}
    if "calibration" in checkpoint:  # undo the folded thresholds: what would a flat 0.5 have given?
        shift = torch.logit(torch.tensor(checkpoint["calibration"]["thresholds"]).clamp(1e-4, 1 - 1e-4))
        raw = {name: torch.sigmoid(torch.logit(torch.tensor(row).clamp(1e-6, 1 - 1e-6)) + shift).tolist()
               for name, row in probabilities.items()}
        flat = score(test_dir, tags, raw, [0.5] * len(tags))
        result |= {f"{name}_at_0.5": flat[name] for name in ("micro_f1", "macro_f1")}
        # after the held-out images trained too (--refit-epochs): the thresholds it might have kept
        for alternative, thresholds in checkpoint["calibration"].get("refit", {}).get("alternatives", {}).items():
            scored = score(test_dir, tags, raw, thresholds)
            result |= {f"{name}[{alternative}]": scored[name] for name in ("micro_f1", "macro_f1")}
        if "refit" in checkpoint["calibration"]:
            refit = checkpoint["calibration"]["refit"]
            result |= {"refit_from_epoch": refit["from_epoch"], "refit_logit_shift": refit.get("mean_logit_shift")}
    return result


def plain_model(tag_count, weights):
    model = models.get_model(ARCH, weights=None)
    if weights != "none":
        model.load_state_dict({name: tensor for name, tensor in torch.load(weights, weights_only=True).items()
                               if not name.startswith("fc.")}, strict=False)
    model.fc = nn.Linear(model.fc.in_features, tag_count)
    return model


def train_plain_loop(train_dir, model_path, args):
    """A plain loop's whole training process (--plain-loop): read, train, save the weights."""
    torch.manual_seed(args.seed)
    tags_of = read_tags_of(scan_folder(train_dir))
    tags = build_vocabulary(tags_of.values())
    flipped = v2.Compose([decode_transform(IMAGE_SIZE), v2.RandomHorizontalFlip(), normalize_transform()])
    dataset = ImageTagDataset(list(tags_of), flipped, torch.from_numpy(multi_hot(list(tags_of.values()), tags)))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=PLAIN_WORKERS,
                        collate_fn=collate_readable, persistent_workers=PLAIN_WORKERS > 0)
    model = plain_model(len(tags), args.weights)
    if args.head_only:  # the original tool: a frozen backbone, Adam on the new last layer
        for parameter in model.parameters():
            parameter.requires_grad = False
        model.fc.requires_grad_(True)
        optimizer, scheduler = torch.optim.Adam(model.fc.parameters(), lr=args.lr), None
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * len(loader))
    loss_function = nn.BCEWithLogitsLoss()
    for _ in range(args.epochs):
        model.train()
        for batch in loader:
            optimizer.zero_grad()
            loss_function(model(batch.images), batch.targets).backward()
            optimizer.step()
            if scheduler:
                scheduler.step()
    torch.save({"tags": tags, "state_dict": model.state_dict()}, model_path)


def plain_loop(train_dir, test_dir, work, weights, flags, environment):
    seconds = timed_process(Path(__file__).relative_to(REPOSITORY), "--plain-loop", train_dir, work / "model.pth",
                            "--weights", weights, *flags, environment=environment)
    saved = torch.load(work / "model.pth", weights_only=True)
    model = plain_model(len(saved["tags"]), "none")
    model.load_state_dict(saved["state_dict"])
    test_images = scan_folder(test_dir).images
    test_loader = DataLoader(ImageTagDataset(test_images, eval_transform(IMAGE_SIZE)), batch_size=64,
                             collate_fn=collate_readable)
    model.eval()
    probabilities = {}
    with torch.inference_mode():
        for batch in test_loader:
            for position, row in zip(batch.indices.tolist(), torch.sigmoid(model(batch.images)).numpy()):
                probabilities[test_images[position].name] = row
    return {**score(test_dir, saved["tags"], probabilities, [0.5] * len(saved["tags"])), "seconds": seconds}


def contestants(mode, extra, references=True, extras_only=False):
    """(name, run function, flags) for a mode; the plain loop of the mode first, as the reference
    (extras_only: the --extra contestants alone, to add to an earlier run's results)."""
    mode = "finetune" if mode in STAND_INS else mode
    if mode == "scratch":
        listed = [("plain loop", plain_loop, ["--lr", "2e-3", "--batch-size", "64"]),
                  ("multitag-trainer", run_multitag_trainer, [])]
    else:
        listed = [("plain fine-tune", plain_loop, ["--lr", "1e-3", "--batch-size", "32"]),
                  ("multitag-trainer", run_multitag_trainer, [])]
        if references:
            listed += [("head-only Adam", plain_loop, ["--lr", "1e-3", "--batch-size", "32", "--head-only"]),
                       ("freeze-backbone", run_multitag_trainer, ["--freeze-backbone"])]
    if references:  # the defaults on a CPU without bf16 units, where the plain loop runs as it always does
        listed += [("fp32", run_multitag_trainer, ["--precision", "fp32"])]
    extras = [(name.split(":", 1)[-1], run_multitag_trainer, flags.split()) for name, flags in extra
              if ":" not in name or name.split(":", 1)[0] in (mode, "finetune" if mode != "scratch" else "")]
    return extras if extras_only else listed + extras


# ----------------------------------------------------------------------------- the suite
def run_suite(args):
    results = []  # one row per mode, set, seed and contestant
    for mode in args.modes:
        weights = "none" if mode == "scratch" else str(default_weights_path(ARCH, mode))
        if mode != "scratch" and not Path(weights).is_file():
            raise SystemExit(f"no pretrained stand-in at {weights}: run python bench/pretrain.py --task {mode} first")
        for set_name in args.sets:
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as temporary:
                    work = args.keep / f"{mode}-{set_name}-{seed}" if args.keep else Path(temporary)
                    train_count = args.train or (SCRATCH_TRAIN if mode == "scratch" else FINETUNE_TRAIN)
                    counts = write_set(set_name, work, seed, train_count, TEST)
                    for name, run, flags in contestants(mode, args.extra, not args.quick, args.extras_only):
                        seed_flags = ["--seed", str(seed), *(["--epochs", str(args.epochs)] if args.epochs else [])]
                        if run is run_multitag_trainer:  # its validation keeps an item's pictures together
                            seed_flags += grouping_flags(set_name)
                        own = work / name.replace(" ", "-")  # each contestant its own model and table
                        own.mkdir(parents=True, exist_ok=True)
                        # the contestant's own flags last: an --extra "--epochs 14" overrides the suite's
                        result = run(work / "train", work / "test", own, weights, seed_flags + flags,
                                     args.environment)
                        results.append({"mode": MODE_NAMES[mode], "set": set_name, "seed": seed, "contestant": name,
                                        "train": counts[0], "test": counts[1], **result})
                        print(json.dumps(results[-1]), flush=True)
                        if args.out:
                            args.out.write_text(json.dumps(results, indent=1))
    return results


def mean(rows, key):
    values = [row[key] for row in rows if key in row]
    return float(np.mean(values)) if values else float("nan")


def mean_and_error(values):
    """'mean ± standard error' of a list of numbers (the error over the runs, e.g. the seeds)."""
    values = np.asarray(values, dtype=float)
    error = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return values.mean(), error


def shown(values, signed=False):
    """'mean ± standard error', or the mean alone for a single run (it has no error to show)."""
    average, error = mean_and_error(values)
    return f"{average:{'+' if signed else ''}.3f}" + ("" if np.isnan(error) else f" ± {error:.3f}")


def paired_gains(rows, name, reference, key):
    """The gains of `name` over `reference` in `key`, run by run (same mode, set and seed)."""
    gains = []
    for row in (row for row in rows if row["contestant"] == name and key in row):
        base = next((other for other in rows if other["contestant"] == reference and other["set"] == row["set"]
                     and other["seed"] == row["seed"] and other["mode"] == row["mode"]), None)
        if base is not None and key in base:
            gains.append(row[key] / base[key] if key == "seconds" else row[key] - base[key])
    return gains


def print_tables(results):
    for mode in dict.fromkeys(row["mode"] for row in results):
        rows = [row for row in results if row["mode"] == mode]
        names = list(dict.fromkeys(row["contestant"] for row in rows))
        reference = names[0]
        sets = list(dict.fromkeys(row["set"] for row in rows))
        for set_name in sets:
            here = [row for row in rows if row["set"] == set_name]
            seeds = sorted({row["seed"] for row in here})
            print(f"\n{mode}, {set_name}: {here[0]['train']} training / {here[0]['test']} test pictures, seeds "
                  f"{', '.join(map(str, seeds))} (means ± standard errors over the seeds)")
            print(f"| {'contestant':18} | mAP           | micro-F1      | macro-F1 | train s | micro/macro-F1 at 0.5 |")
            print("|" + "|".join("-" * width for width in (20, 15, 15, 10, 9, 23)) + "|")
            for name in names:
                mine = [row for row in here if row["contestant"] == name]
                flat = (f"{mean(mine, 'micro_f1_at_0.5'):.3f} / {mean(mine, 'macro_f1_at_0.5'):.3f}"
                        if "micro_f1_at_0.5" in mine[0] else "")
                print(f"| {name:18} | {shown([row['mAP'] for row in mine])} | "
                      f"{shown([row['micro_f1'] for row in mine])} | {mean(mine, 'macro_f1'):8.3f} | "
                      f"{mean(mine, 'seconds'):7.1f} | {flat:21} |")
        for versus in dict.fromkeys([reference, "multitag-trainer"]):
            others = [name for name in names if name != versus]
            if versus not in names or not others:
                continue
            print(f"\n{mode}: gain over '{versus}', run by run (same set and seed): mean ± standard error over all "
                  "runs, then per set (mAP / micro-F1); time: mean ratio")
            print("| contestant         | mAP            | micro-F1       | macro-F1 | time  | "
                  + " | ".join(sets) + " |")
            print("|--------------------|----------------|----------------|----------|-------|"
                  + "|".join("-" * (len(name) + 2) for name in sets) + "|")
            for name in others:
                per_set = []
                for set_name in sets:
                    here = [row for row in rows if row["set"] == set_name]
                    gains = [paired_gains(here, name, versus, key) for key in ("mAP", "micro_f1")]
                    per_set.append(" / ".join(f"{np.mean(gain):+.3f}" if gain else "-" for gain in gains))
                print(f"| {name:18} | {shown(paired_gains(rows, name, versus, 'mAP'), True)} | "
                      f"{shown(paired_gains(rows, name, versus, 'micro_f1'), True)} | "
                      f"{np.mean(paired_gains(rows, name, versus, 'macro_f1')):+8.3f} | "
                      f"{np.mean(paired_gains(rows, name, versus, 'seconds')):.2f}x | " + " | ".join(per_set) + " |")
        print_refit_thresholds(mode, rows)


def print_refit_thresholds(mode, rows):
    """How the thresholds chosen before the held-out images trained fare on the final model (test F1)."""
    refitted = [row for row in rows if "micro_f1[carried]" in row]
    if not refitted:
        return
    alternatives = sorted({key[len("micro_f1["):-1] for row in refitted for key in row if key.startswith("micro_f1[")})
    print(f"\n{mode}: thresholds after the held-out images trained too, test micro-F1 / macro-F1 (mean ± s.e. "
          f"over {len(refitted)} runs of train.py)")
    print("| thresholds | micro-F1 | macro-F1 | micro-F1 gain over carried |")
    print("|---|---|---|---|")
    for name in alternatives:
        gains = [row[f"micro_f1[{name}]"] - row["micro_f1[carried]"] for row in refitted]
        print(f"| {name} | {shown([row[f'micro_f1[{name}]'] for row in refitted])} | "
              f"{shown([row[f'macro_f1[{name}]'] for row in refitted])} | {shown(gains, True)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="store_true", help="every set, seed and mode (see --sets, --seeds, --modes)")
    parser.add_argument("--set", choices=SETS, help="one set from scratch, one seed (--seed)")
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS), help="the suite's sets")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="the suite's seeds")
    parser.add_argument("--modes", nargs="+", choices=("scratch", *STAND_INS), default=["scratch", *STAND_INS],
                        help="from scratch, and fine-tuning from the far and the close stand-in (bench/pretrain.py "
                             "--task far / close)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=FLAGS",
                        help='another contestant: train.py with these flags, e.g. "bce=--loss bce"; '
                             '"finetune:NAME=FLAGS" or "scratch:NAME=FLAGS" for one mode only')
    parser.add_argument("--train", type=int, help=f"training pictures per set (default: {SCRATCH_TRAIN} from scratch, "
                                                  f"{FINETUNE_TRAIN} fine-tuning)")
    parser.add_argument("--epochs", type=int,
                        help=f"epochs for every contestant (default: {EPOCHS} for the plain loops, auto for train.py)")
    parser.add_argument("--quick", action="store_true",
                        help="only the plain loop and train.py's defaults (no fp32, head-only or --freeze-backbone)")
    parser.add_argument("--threads", type=int, help="CPU threads per contestant (default: all)")
    parser.add_argument("--out", type=Path, help="also write every result as JSON here")
    parser.add_argument("--keep", type=Path, help="keep every set and model in this folder (for bench/thresholds.py)")
    parser.add_argument("--extras-only", action="store_true",
                        help="run only the --extra contestants (the references are deterministic: print them "
                             "with an earlier run's results, --results EARLIER.json THIS.json)")
    parser.add_argument("--results", type=Path, nargs="+",
                        help="only print the tables of earlier --out files, taken together")
    parser.add_argument("--seed", type=int, default=0, help="with --set, or --plain-loop")
    parser.add_argument("--plain-loop", nargs=2, metavar=("TRAIN_DIR", "MODEL"),
                        help="only train a plain loop on TRAIN_DIR and save it as MODEL (run by this script)")
    parser.add_argument("--lr", type=float, default=2e-3, help="with --plain-loop")
    parser.add_argument("--batch-size", type=int, default=64, help="with --plain-loop")
    parser.add_argument("--head-only", action="store_true", help="with --plain-loop")
    parser.add_argument("--weights", default="none", help="with --plain-loop: none, or a stand-in's state dict")
    args = parser.parse_args()
    if args.plain_loop:
        args.epochs = args.epochs or EPOCHS
        return train_plain_loop(*args.plain_loop, args)
    if args.results:
        return print_tables([row for path in args.results for row in json.loads(path.read_text())])
    if not (args.suite or args.set):
        parser.error("choose --suite or --set")
    if args.set:
        args.sets, args.seeds, args.modes = [args.set], [args.seed], ["scratch"]
    args.extra = [entry.split("=", 1) for entry in args.extra]
    args.environment = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    started = time.perf_counter()
    results = run_suite(args)
    epochs = args.epochs or f"{EPOCHS} (train.py: auto)"
    print(f"\nresnet18, {IMAGE_SIZE} px, {epochs} epochs; {torch.get_num_threads()} CPU threads; "
          f"{(time.perf_counter() - started) / 60:.0f} min in all")
    print_tables(results)


if __name__ == "__main__":
    main()
