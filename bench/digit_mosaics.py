"""A real-image multi-label dataset: mosaics of scikit-learn's handwritten digits.

Each image is a 2x2 grid holding 1-4 handwritten digits (8x8 scans from `load_digits`,
scaled up), tagged with the digits it shows and with `even` / `odd` when it holds such a
digit. Digits 7 and 9 are kept rare on purpose, so that some tags have few examples.

    python bench/digit_mosaics.py OUT_DIR [--train 800] [--test 300] [--seed 0]
writes OUT_DIR/train and OUT_DIR/test, each image with its NAME.png.txt sidecar.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from common.dataset import default_tag_file, format_tags  # noqa: E402
from common.files import write_text_atomically  # noqa: E402

CELL = 32  # pixels per digit cell; a mosaic is 2x2 cells
RARE_DIGITS = {7: 0.15, 9: 0.25}  # keep-probability of these digits, so that their tags stay rare


def digit_pool(seed, part):
    """The digits of one half of load_digits (part 0 for training, 1 for testing), so the test
    mosaics are made of handwriting the model never saw."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    half = order[: len(order) // 2] if part == 0 else order[len(order) // 2:]
    return digits.images[half], digits.target[half]


def make_mosaic(rng, images, labels):
    canvas = np.zeros((2 * CELL, 2 * CELL), dtype=np.float64)
    count = rng.integers(1, 5)
    cells = rng.permutation(4)[:count]
    present = set()
    for cell in cells:
        while True:
            pick = rng.integers(len(labels))
            label = int(labels[pick])
            if rng.random() < RARE_DIGITS.get(label, 1.0):
                break
        digit = Image.fromarray((images[pick] / 16.0 * 255).astype(np.uint8)).resize((CELL - 4, CELL - 4),
                                                                                      Image.BILINEAR)
        row, column = divmod(int(cell), 2)
        y, x = row * CELL + rng.integers(0, 5), column * CELL + rng.integers(0, 5)
        canvas[y:y + CELL - 4, x:x + CELL - 4] = np.maximum(canvas[y:y + CELL - 4, x:x + CELL - 4], np.asarray(digit))
        present.add(label)
    tags = [f"digit_{label}" for label in sorted(present)]
    tags += [name for name, parity in (("even", 0), ("odd", 1)) if any(label % 2 == parity for label in present)]
    ink = np.array([rng.integers(0, 80), rng.integers(0, 80), rng.integers(0, 80)], dtype=np.float64)
    paper = np.array([rng.integers(190, 256) for _ in range(3)], dtype=np.float64)
    alpha = (canvas / 255.0)[..., None]
    rgb = (paper * (1 - alpha) + ink * alpha).astype(np.uint8)
    return Image.fromarray(rgb), tags


def write_mosaics(folder, count, seed, part):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1000 * part)
    images, labels = digit_pool(seed, part)
    for number in range(count):
        image, tags = make_mosaic(rng, images, labels)
        path = folder / f"mosaic_{number:05d}.png"
        image.save(path)
        write_text_atomically(default_tag_file(path), format_tags(tags))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder to write train/ and test/ into")
    parser.add_argument("--train", type=int, default=800, help="training mosaics")
    parser.add_argument("--test", type=int, default=300, help="test mosaics")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    write_mosaics(Path(args.out) / "train", args.train, args.seed, part=0)
    write_mosaics(Path(args.out) / "test", args.test, args.seed, part=1)
    print(f"wrote {args.train} training and {args.test} test mosaics to {args.out}")


if __name__ == "__main__":
    main()
