"""Tagging quality under a fixed budget, against a plain training loop, on real handwriting.

    python bench/quality.py                      # 2,000 training and 600 test mosaics, 10 epochs
    python bench/quality.py --train 800 --test 300 --epochs 4
    python bench/quality.py --hard               # the harder layout, near the issue's hidden benchmark

Both contestants train resnet18 from random weights (--weights none) on 64-px digit mosaics
(see digit_mosaics.py) for the same number of epochs, on the same machine, in this one run,
each in a fresh process of its own, as a user would run them:

    multitag-trainer   python train.py with its defaults, then python infer.py --csv on the test folder
    plain loop         python bench/quality.py --plain-loop: BCE, Adam at a fixed 1e-3, every
                       training image, no augmentation, no validation, a flat 0.5 threshold: what
                       a first training script looks like

Test images are built from handwriting that neither model saw. The table reports mAP,
micro-F1 and macro-F1 on them, and the wall-clock time of each training process, from its
start (imports included) to its exit.
"""

import argparse
import csv
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

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.digit_mosaics import write_mosaics  # noqa: E402
from common.checkpoint import load_checkpoint  # noqa: E402
from common.dataset import (  # noqa: E402
    ImageTagDataset,
    build_vocabulary,
    collate_readable,
    multi_hot,
    read_tags_of,
    scan_folder,
)
from common.images import eval_transform  # noqa: E402
from common.metrics import evaluate  # noqa: E402

PLAIN_WORKERS = min(4, os.cpu_count() or 1)  # decoding processes, as many as train.py uses by default


def truth_of(folder, tags):
    tags_of = read_tags_of(scan_folder(folder))
    return {image.name: row for image, row in zip(tags_of, multi_hot(list(tags_of.values()), tags).numpy())}


def score(folder, tags, probabilities_by_name, thresholds):
    truth = truth_of(folder, tags)
    names = sorted(truth)
    targets = np.array([truth[name] for name in names])
    probabilities = np.array([probabilities_by_name[name] for name in names])
    return evaluate(targets, probabilities, thresholds)


def timed_process(*command):
    """Run a Python script in a fresh process; returns its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *map(str, command)], check=True, cwd=REPOSITORY)
    return time.perf_counter() - started


def run_multitag_trainer(train_dir, test_dir, work, args):
    """python train.py with its defaults, then python infer.py --csv, exactly as a user runs them."""
    seconds = timed_process("train.py", "--data", train_dir, "--model", work / "model.pth", "--arch", "resnet18",
                            "--weights", "none", "--image-size", args.image_size, "--epochs", args.epochs,
                            "--seed", args.seed, "--yes", *args.train_flags.split())
    timed_process("infer.py", "--input", test_dir, "--model", work / "model.pth", "--csv", work / "test.csv")
    with open(work / "test.csv", newline="") as file:
        rows = list(csv.reader(file))
    tags = rows[0][1:]
    probabilities = {row[0]: [float(value) for value in row[1:]] for row in rows[1:]}
    checkpoint = load_checkpoint(work / "model.pth")
    result = {**score(test_dir, tags, probabilities, checkpoint["thresholds"]), "seconds": seconds}
    if "calibration" in checkpoint:  # undo the folded thresholds to see what calibration adds on the test set
        shift = torch.logit(torch.tensor(checkpoint["calibration"]["thresholds"]).clamp(1e-4, 1 - 1e-4))
        raw = {name: torch.sigmoid(torch.logit(torch.tensor(row).clamp(1e-6, 1 - 1e-6)) + shift).tolist()
               for name, row in probabilities.items()}
        result["uncalibrated"] = score(test_dir, tags, raw, [0.5] * len(tags))
    return result


def plain_model(tag_count):
    model = models.resnet18(weights=None)
    model.fc = nn.Linear(model.fc.in_features, tag_count)
    return model


def train_plain_loop(train_dir, model_path, args):
    """The plain loop's whole training process (--plain-loop): read, train, save the weights."""
    torch.manual_seed(args.seed)
    tags_of = read_tags_of(scan_folder(train_dir))
    tags = build_vocabulary(tags_of.values())
    dataset = ImageTagDataset(list(tags_of), eval_transform(args.image_size), multi_hot(list(tags_of.values()), tags))
    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=PLAIN_WORKERS,
                        collate_fn=collate_readable, persistent_workers=PLAIN_WORKERS > 0)
    model = plain_model(len(tags))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_function = nn.BCEWithLogitsLoss()
    for _ in range(args.epochs):
        model.train()
        for batch in loader:
            optimizer.zero_grad()
            loss_function(model(batch.images), batch.targets).backward()
            optimizer.step()
    torch.save({"tags": tags, "state_dict": model.state_dict()}, model_path)


def plain_loop(train_dir, test_dir, work, args):
    seconds = timed_process(Path(__file__).relative_to(REPOSITORY), "--plain-loop", train_dir, work / "plain.pth",
                            "--epochs", args.epochs, "--image-size", args.image_size, "--seed", args.seed)
    saved = torch.load(work / "plain.pth", weights_only=True)
    model = plain_model(len(saved["tags"]))
    model.load_state_dict(saved["state_dict"])
    test_images = scan_folder(test_dir).images
    test_loader = DataLoader(ImageTagDataset(test_images, eval_transform(args.image_size)), batch_size=64,
                             collate_fn=collate_readable)
    model.eval()
    probabilities = {}
    with torch.inference_mode():
        for batch in test_loader:
            for position, row in zip(batch.indices.tolist(), torch.sigmoid(model(batch.images)).numpy()):
                probabilities[test_images[position].name] = row
    return {**score(test_dir, saved["tags"], probabilities, [0.5] * len(saved["tags"])), "seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=2000, help="training mosaics")
    parser.add_argument("--test", type=int, default=600, help="test mosaics")
    parser.add_argument("--epochs", type=int, default=10, help="epochs for both contestants")
    parser.add_argument("--image-size", type=int, default=64, help="input side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--hard", action="store_true", help="the harder 3x3 mosaics (see digit_mosaics.py)")
    parser.add_argument("--only", choices=["ours", "plain"], help="run one contestant")
    parser.add_argument("--train-flags", default="",
                        help='extra train.py flags, e.g. "--loss bce", to compare settings')
    parser.add_argument("--plain-loop", nargs=2, metavar=("TRAIN_DIR", "MODEL"),
                        help="only train the plain loop on TRAIN_DIR and save it as MODEL (run by this script)")
    args = parser.parse_args()
    if args.plain_loop:
        return train_plain_loop(*args.plain_loop, args)
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        write_mosaics(work / "train", args.train, args.seed, part=0, hard=args.hard)
        write_mosaics(work / "test", args.test, args.seed, part=1, hard=args.hard)
        results = {}
        if args.only != "plain":
            results["multitag-trainer"] = run_multitag_trainer(work / "train", work / "test", work, args)
        if args.only != "ours":
            results["plain loop"] = plain_loop(work / "train", work / "test", work, args)
    if "uncalibrated" in results.get("multitag-trainer", {}):
        raw = results["multitag-trainer"]["uncalibrated"]
        print(f"(multitag-trainer with a flat 0.5 threshold instead of its calibrated ones: micro-F1 "
              f"{raw['micro_f1']:.3f}, macro-F1 {raw['macro_f1']:.3f})")
    print(f"\nquality: {args.train} training / {args.test} test {'hard ' * args.hard}digit mosaics, resnet18 from "
          f"scratch, {args.image_size} px, {args.epochs} epochs, {torch.get_num_threads()} CPU threads")
    print(f"{'':18} {'mAP':>6} {'micro-F1':>9} {'macro-F1':>9} {'train s':>8}")
    for name, result in results.items():
        print(f"{name:18} {result['mAP']:6.3f} {result['micro_f1']:9.3f} {result['macro_f1']:9.3f} "
              f"{result['seconds']:8.1f}")
    if len(results) == 2:
        ours, plain = results["multitag-trainer"], results["plain loop"]
        print(f"time ratio (multitag-trainer / plain loop): {ours['seconds'] / plain['seconds']:.2f}")


if __name__ == "__main__":
    main()
