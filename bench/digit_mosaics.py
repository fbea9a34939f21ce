"""A real-image multi-label dataset: mosaics of scikit-learn's handwritten digits.

Each image is a 2x2 grid holding 1-4 handwritten digits (8x8 scans from `load_digits`,
scaled up), tagged with the digits it shows and with `even` / `odd` when it holds such a
digit. Digits 7 and 9 are kept rare on purpose, so that some tags have few examples.

With --hard, each image is a 3x3 grid of 1-5 smaller digits, each scaled and rotated at
random, on a speckled background, and two more tags need the whole picture: `repeat` (a
digit appears twice) and `crowded` (four or more digits). A plain training loop scores about
0.78 mAP on 2,000 of them, where the easy layout gives 0.95. The hard layout is the `digits`
set of the quality suite (bench/real_sets.py).

    python bench/digit_mosaics.py OUT_DIR [--train 800] [--test 300] [--seed 0] [--hard]
writes OUT_DIR/train and OUT_DIR/test, each image with its NAME.png.txt sidecar.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from common.files import write_text_atomically  # noqa: E402
from common.tagfiles import default_tag_file, format_tags

CELL = 32  # pixels per digit cell; a mosaic is 2x2 cells (3x3 with --hard)
RARE_DIGITS = {7: 0.15, 9: 0.25}  # keep-probability of these digits, so that their tags stay rare
HARD_RARE_DIGITS = {3: 0.5, 7: 0.15, 9: 0.25}


def digit_pool(seed, part):
    """The digits of one half of load_digits (part 0 for training, 1 for testing), so the test
    mosaics are made of handwriting the model never saw."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    half = order[: len(order) // 2] if part == 0 else order[len(order) // 2:]
    return digits.images[half], digits.target[half]


def pick_digit(rng, labels, rare):
    while True:
        pick = rng.integers(len(labels))
        if rng.random() < rare.get(int(labels[pick]), 1.0):
            return pick


def make_mosaic(rng, images, labels, hard=False):
    grid, most, rare = (3, 5, HARD_RARE_DIGITS) if hard else (2, 4, RARE_DIGITS)
    canvas = np.zeros((grid * CELL, grid * CELL), dtype=np.float64)
    count = rng.integers(1, most + 1)
    placed = []
    for cell in rng.permutation(grid * grid)[:count]:
        pick = pick_digit(rng, labels, rare)
        side = int(rng.integers(18, CELL + 1)) if hard else CELL - 4
        digit = Image.fromarray((images[pick] / 16.0 * 255).astype(np.uint8)).resize((side, side), Image.BILINEAR)
        if hard:
            digit = digit.rotate(float(rng.uniform(-20, 20)), Image.BILINEAR)
        row, column = divmod(int(cell), grid)
        y, x = row * CELL + rng.integers(0, CELL - side + 1), column * CELL + rng.integers(0, CELL - side + 1)
        canvas[y:y + side, x:x + side] = np.maximum(canvas[y:y + side, x:x + side], np.asarray(digit))
        placed.append(int(labels[pick]))
    present = set(placed)
    tags = [f"digit_{label}" for label in sorted(present)]
    tags += [name for name, parity in (("even", 0), ("odd", 1)) if any(label % 2 == parity for label in present)]
    if hard:
        canvas = np.maximum(canvas, (rng.random(canvas.shape) < 0.03) * rng.integers(60, 200))  # speckles
        tags += ["repeat"] * (len(placed) != len(present)) + ["crowded"] * (len(placed) >= 4)
    ink = rng.integers(0, 120 if hard else 80, 3).astype(np.float64)
    paper = rng.integers(150 if hard else 190, 256, 3).astype(np.float64)
    alpha = (canvas / 255.0)[..., None]
    rgb = (paper * (1 - alpha) + ink * alpha).astype(np.uint8)
    return Image.fromarray(rgb), tags


def write_mosaics(folder, count, seed, part, hard=False):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1000 * part)
    images, labels = digit_pool(seed, part)
    for number in range(count):
        image, tags = make_mosaic(rng, images, labels, hard)
        path = folder / f"mosaic_{number:05d}.png"
        image.save(path)
        write_text_atomically(default_tag_file(path), format_tags(tags))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write train/ and test/ into")
    parser.add_argument("--train", type=int, default=800, help="training mosaics")
    parser.add_argument("--test", type=int, default=300, help="test mosaics")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--hard", action="store_true", help="3x3 grids of scaled, rotated digits on speckles")
    args = parser.parse_args()
    write_mosaics(Path(args.out) / "train", args.train, args.seed, part=0, hard=args.hard)
    write_mosaics(Path(args.out) / "test", args.test, args.seed, part=1, hard=args.hard)
    print(f"wrote {args.train} training and {args.test} test mosaics to {args.out}")


if __name__ == "__main__":
    main()
