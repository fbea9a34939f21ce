"""Does `prepare.py duplicates` pair changed copies with their originals, and nothing else? How fast
is it on 100,000 pictures?

    python bench/duplicates.py                    # accuracy: ~4,500 originals and ~3,500 changed copies (3 min)
    python bench/duplicates.py --hashes           # ... and imagehash's perceptual hashes on the same folder
    python bench/duplicates.py --scale 100000     # speed: 100,000 photo crops, cold and with --index-cache

Accuracy. The originals are real pictures of four kinds: the suite's Debian theme icons, Font
Awesome glyphs and digit mosaics (bench/real_sets.py, training and test parts), and tiles of
desktop wallpapers, most of them photographs (Debian's MATE, KDE Plasma and GNOME backgrounds,
cut into 6 x 4 tiles that do not overlap, those with little detail left out). 45 % of the
originals get 1, 2 or 3 changed copies (1.72 on average, as in a folder of 2,000 pictures with
1,550 copies of 900), each under a random name and changed in one way:

    resize      scaled by 0.5-1.5
    re-encode   saved as JPEG at quality 40-90
    crop        1-5 % cut from each side
    brighten    brightness x 1.15-1.5, or darkened x 0.6-0.85
    frame       a solid border of 3-10 % of the side, white, black or a random colour

Then `python prepare.py duplicates` runs on the folder as a user runs it, in a process of its own,
and its groups are scored pair by pair:

    recall      the share of the pairs of pictures that are copies of one original (with it, or
                with each other) that land in one group
    precision   the share of the pairs it puts in one group that belong together: copies of one
                original, or renditions of one item (one icon name in several themes, one glyph
                in two renderings), or originals that are the same picture already (their mean
                absolute difference at 32 x 32 pixels is below 6 of 255: the icon themes draw some
                icons twice under two names)

--hashes also scores imagehash's pHash and dHash (64 bits each, pictures flattened as the scripts
see them), joining two pictures when their Hamming distance is at most a threshold, as perceptual
hash tools do.

Speed. --scale N writes N crops of the wallpapers at random places and sizes (256-pixel JPEGs),
then times `prepare.py duplicates` on them twice, each in a fresh process: with --index-cache
from nothing, then again with the cache it wrote.
"""

import argparse
import csv
import io
import json
import random
import re
import string
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.real_sets import photo_tiles, write_set  # noqa: E402
from common.images import open_image, to_rgb  # noqa: E402

CHANGES = ("resize", "re-encode", "crop", "brighten", "frame")
COPIED_SHARE = 0.45
COPIES = ((1, 0.45), (2, 0.38), (3, 0.17))  # copies per copied original, and how often: 1.72 on average
SAME_PICTURE = 6  # mean absolute difference (of 255, at 32 x 32) below which two originals are one picture


# ----------------------------------------------------------------------------- the folder
def originals(work, seed):
    """[(picture, source, item)] of the suite's sets and the photo tiles."""
    found = []
    for set_name in ("icons", "fontawesome", "digits"):
        write_set(set_name, work / set_name, seed)
        for part in ("train", "test"):
            for path in sorted((work / set_name / part).glob("*.png")):
                item = path.stem if set_name == "digits" else re.sub(r"_\d+$", "", path.stem)
                with Image.open(path) as opened:
                    found.append((opened.copy(), set_name, f"{set_name}:{item}"))
    found += [(tile, "photos", f"photos:{name}") for tile, name in photo_tiles(6, 4, min_detail=4)]
    return found


def change(picture, kind, rng):
    """A copy of the picture as a user sees it (transparency flattened), changed one way."""
    picture = to_rgb(picture)
    width, height = picture.size
    if kind == "resize":
        factor = rng.uniform(0.5, 1.5)
        return picture.resize((max(8, round(width * factor)), max(8, round(height * factor))), Image.LANCZOS)
    if kind == "crop":
        left, top, right, bottom = (rng.uniform(0.01, 0.05) for _ in range(4))
        return picture.crop((round(left * width), round(top * height), width - round(right * width),
                             height - round(bottom * height)))
    if kind == "brighten":
        return ImageEnhance.Brightness(picture).enhance(rng.choice([rng.uniform(1.15, 1.5), rng.uniform(0.6, 0.85)]))
    if kind == "frame":
        colour = rng.choice([(255, 255, 255), (0, 0, 0), tuple(rng.randrange(256) for _ in range(3))])
        border = max(1, round(rng.uniform(0.03, 0.10) * max(width, height)))
        framed = Image.new("RGB", (width + 2 * border, height + 2 * border), colour)
        framed.paste(picture, (border, border))
        return framed
    return picture  # re-encode: the JPEG is written by write_copy


def write_changed_copies(folder, name, rng):
    """Write 1-3 changed copies of folder/name under random names; returns [(copy name, change)]."""
    written = []
    for _ in range(rng.choices([count for count, _ in COPIES], [weight for _, weight in COPIES])[0]):
        kind = rng.choice(CHANGES)
        with Image.open(folder / name) as opened:
            copy = change(opened.copy(), kind, rng)
        jpeg = kind == "re-encode" or rng.random() < 0.5
        copy_name = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(12)) + \
            (".jpg" if jpeg else ".png")
        quality = rng.randint(40, 90) if kind == "re-encode" else 90
        copy.save(folder / copy_name, **({"quality": quality} if jpeg else {}))
        written.append((copy_name, kind))
    return written


def add_changed_copies(folder, seed, share=COPIED_SHARE):
    """Give `share` of a tagged folder's pictures changed copies, each with its original's tag file;
    returns {copy name: original name}."""
    rng = random.Random(seed)
    names = sorted(path.name for path in Path(folder).glob("*.png"))
    original_of = {}
    for name in rng.sample(names, round(share * len(names))):
        for copy_name, _ in write_changed_copies(folder, name, rng):
            (folder / f"{copy_name}.txt").write_bytes((folder / f"{name}.txt").read_bytes())
            original_of[copy_name] = name
    return original_of


def write_folder(folder, pictures, seed):
    """Write the originals and their copies; returns one record per file."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for number, (picture, source, item) in enumerate(pictures):
        name = f"{number:05d}.{'jpg' if source == 'photos' else 'png'}"
        picture.save(folder / name, **({"quality": 90} if source == "photos" else {}))
        records.append({"name": name, "source": source, "item": item, "original": name, "change": None})
    for record in rng.sample(records[:], round(COPIED_SHARE * len(records))):
        records += [{**record, "name": name, "change": kind}
                    for name, kind in write_changed_copies(folder, record["name"], rng)]
    return records


# ----------------------------------------------------------------------------- scoring
def same_pictures(folder, records):
    """Pairs of originals that are one picture already (see SAME_PICTURE)."""
    import torch

    names = [record["name"] for record in records if record["change"] is None]
    pixels = torch.stack([torch.from_numpy(np.asarray(open_image(folder / name).resize((32, 32), Image.BOX),
                                                      dtype=np.float32).ravel()) for name in names])
    close = torch.nonzero(torch.cdist(pixels, pixels, p=1) / pixels.shape[1] < SAME_PICTURE).tolist()
    return [(names[a], names[b]) for a, b in close if a < b]


def score(records, groups, same):
    """Pair recall and precision of the groups (see the module's description), overall and by kind."""
    index = {record["name"]: row for row, record in enumerate(records)}
    count = len(records)
    parent = list(range(count))

    def root(row):
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    first_of_item = {}
    for row, record in enumerate(records):  # what belongs together: copies, renditions, the same picture twice
        parent[root(row)] = root(index[record["original"]])
        parent[root(row)] = root(first_of_item.setdefault(record["item"], row))
    for a, b in same:
        parent[root(index[a])] = root(index[b])
    together = np.array([root(row) for row in range(count)])
    original = np.array([index[record["original"]] for record in records])
    group_of = np.arange(count) + count
    for number, names in enumerate(groups):
        group_of[[index[name] for name in names]] = number
    upper = np.triu_indices(count, 1)
    copies = (original[:, None] == original[None, :])[upper]
    grouped = (group_of[:, None] == group_of[None, :])[upper]
    belong = (together[:, None] == together[None, :])[upper]
    source = np.array([record["source"] for record in records])[upper[0]]
    result = {"pictures": count, "copies": sum(record["change"] is not None for record in records),
              "groups": len(groups), "copy pairs": int(copies.sum()), "pairs grouped": int(grouped.sum()),
              "recall": float((grouped & copies).sum() / copies.sum()),
              "precision": float((grouped & belong).sum() / max(grouped.sum(), 1))}
    for name in sorted(set(source)):
        mine = source == name
        result[f"recall {name}"] = float((grouped & copies & mine).sum() / max((copies & mine).sum(), 1))
        result[f"precision {name}"] = float((grouped & belong & mine).sum() / max((grouped & mine).sum(), 1))
    found_by_change = defaultdict(list)  # each copy: is it in its original's group?
    for row, record in enumerate(records):
        if record["change"]:
            found_by_change[record["change"]].append(group_of[row] == group_of[original[row]])
    result |= {f"found {kind}": float(np.mean(found_by_change[kind])) for kind in CHANGES}
    return result


def read_groups(path):
    groups = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            groups[row["group"]].append(row["image"])
    return list(groups.values())


def run_duplicates(folder, output, *flags):
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPOSITORY / "prepare.py"), "duplicates", str(folder), "--output",
                             str(output), *map(str, flags)], check=True, capture_output=True, text=True,
                            env={"TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin"})
    return time.perf_counter() - started, result.stdout


def accuracy(args):
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.keep or temporary)
        folder = work / "pictures"
        records = write_folder(folder, originals(work / "sets", args.seed), args.seed)
        (work / "records.json").write_text(json.dumps(records))
        seconds, output = run_duplicates(folder, work / "duplicates.csv")
        result = score(records, read_groups(work / "duplicates.csv"), same_pictures(folder, records))
        result["seconds"] = seconds
        print(next((line for line in output.splitlines() if "groups of near-duplicates" in line), ""))
        print(json.dumps(result, indent=1))
        print_accuracy(result)
        if args.hashes:
            score_hashes(folder, records, same_pictures(folder, records))
        return result


def score_hashes(folder, records, same):
    """imagehash's pHash and dHash on the same folder, at several Hamming distances."""
    import imagehash

    from common.duplicates import components

    bits = {"pHash": [], "dHash": []}
    for record in records:
        picture = open_image(folder / record["name"])
        bits["pHash"].append(imagehash.phash(picture).hash.ravel())
        bits["dHash"].append(imagehash.dhash(picture).hash.ravel())
    print("\n| hash | Hamming distance at most | recall | precision |\n|---|---|---|---|")
    for name, rows in bits.items():
        signs = np.array(rows, dtype=np.float32) * 2 - 1  # Hamming distance = (64 - dot) / 2
        distance = (64 - signs @ signs.T) / 2
        for threshold in (2, 4, 8, 12):
            first, second = np.nonzero(np.triu(distance <= threshold, 1))
            component = components(len(records), (first, second))
            members = defaultdict(list)
            for row, number in enumerate(component):
                members[number].append(records[row]["name"])
            result = score(records, [names for names in members.values() if len(names) > 1], same)
            print(f"| {name} | {threshold} | {result['recall']:.3f} | {result['precision']:.3f} |")


def print_accuracy(result):
    sources = sorted(key.split(" ", 1)[1] for key in result if key.startswith("precision "))
    print(f"\n{result['pictures']} pictures ({result['copies']} changed copies), {result['groups']} groups, "
          f"{result['seconds']:.0f} s")
    print("| | all | " + " | ".join(sources) + " |")
    print("|---|---|" + "---|" * len(sources))
    for measure in ("recall", "precision"):
        print(f"| {measure} | {result[measure]:.3f} | " + " | ".join(f"{result[f'{measure} {name}']:.3f}"
                                                              for name in sources) + " |")
    print("| copy found with its original | " + " | ".join(f"{kind} {result[f'found {kind}']:.3f}"
                                                          for kind in CHANGES) + " |")


# ----------------------------------------------------------------------------- speed
def write_crops(folder, count, seed, side=256):
    """`count` JPEGs cropped from the wallpapers at random places and sizes."""
    from bench.real_sets import wallpapers

    rng = np.random.default_rng(seed)
    sources = []
    for path in wallpapers():
        with Image.open(path) as opened:
            picture = opened.convert("RGB")
        picture.thumbnail((2400, 2400))
        if min(picture.size) > side:
            sources.append(picture)
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        picture = sources[rng.integers(len(sources))]
        size = int(rng.integers(side, min(picture.size)))
        left, top = int(rng.integers(0, picture.width - size + 1)), int(rng.integers(0, picture.height - size + 1))
        crop = picture.crop((left, top, left + size, top + size)).resize((side, side), Image.BILINEAR)
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=85)
        (folder / f"{number:06d}.jpg").write_bytes(buffer.getvalue())


def speed(args):
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(args.keep or temporary)
        folder = work / "crops"
        started = time.perf_counter()
        if not (folder / f"{args.scale - 1:06d}.jpg").exists():  # a kept folder (--keep) is used again
            write_crops(folder, args.scale, args.seed)
            print(f"wrote {args.scale} crops in {time.perf_counter() - started:.0f} s")
        index = work / "crops.index"
        for kept in work.glob("crops.index*"):
            kept.unlink()
        cold, output = run_duplicates(folder, work / "cold.csv", "--index-cache", index)
        print(next((line for line in output.splitlines() if "groups of near-duplicates" in line), ""))
        warm, _ = run_duplicates(folder, work / "warm.csv", "--index-cache", index)
        same = (work / "cold.csv").read_text() == (work / "warm.csv").read_text()
        print(f"\n| pictures | first run | again, with --index-cache | same groups |\n|---|---|---|---|\n"
              f"| {args.scale:,} | {cold:.0f} s | {warm:.0f} s | {'yes' if same else 'NO'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="which copies, changed how")
    parser.add_argument("--scale", type=int, help="only the speed test, on this many pictures")
    parser.add_argument("--hashes", action="store_true", help="also score imagehash's pHash and dHash (pip install "
                                                              "imagehash)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    return speed(args) if args.scale else accuracy(args)


if __name__ == "__main__":
    main()
