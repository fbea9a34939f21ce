"""How long train.py takes to index a folder before its first epoch, from 10,000 to 1,000,000 images.

    python bench/scan_speed.py                                 # 10k, 100k and 1M images (about 15 minutes)
    python bench/scan_speed.py --sizes 10000,100000            # a quicker look
    python bench/scan_speed.py --folder /data/scan-bench --keep  # generate once, measure again later

Each folder holds N tiny PNGs, each with a NAME.png.txt sidecar of 8 tags drawn from 3,000
(frequent tags common, as on booru sites). For each size it runs, in a fresh process each time,
exactly what train.py runs before training: list the folder, pair images with tag files, read
every tag file, build the tag list and the sparse image x tag matrix, and split off validation
images. It reports the seconds and peak memory of that:

    first scan    no index file
    indexed scan  with --index-cache: the tag files' sizes and times are checked, not read
    touched 1 %   the same after editing 1 % of the tag files, which are then read again
    cold          first and indexed scans with the page cache emptied first (needs root; else
                  skipped): what a laptop sees the first time after a reboot

and how the time grows with the folder (seconds per 1,000 images should stay flat).
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
TAG_VOCABULARY = [f"tag_{number:04d}" for number in range(3000)]
TAGS_PER_IMAGE = 8
# The smallest valid PNG (1 x 1 pixel): the images are never opened while indexing, only listed.
TINY_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d7"
                         "63f8cfc000000301010018dd8db00000000049454e44ae426082")


def write_folder(folder, count):
    """N images with sidecars; skipped when a complete folder of that size is already there."""
    marker = folder / ".complete"
    if marker.exists():
        return 0.0
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(TAG_VOCABULARY))]  # a long tail of rare tags
    generator = random.Random(count)
    for number in range(count):
        image = folder / f"img_{number:07d}.png"
        image.write_bytes(TINY_PNG)
        tags = dict.fromkeys(generator.choices(TAG_VOCABULARY, weights, k=TAGS_PER_IMAGE))
        (folder / f"{image.name}.txt").write_text("\n".join(tags) + "\n")
    marker.touch()
    return time.perf_counter() - started


def measure(folder, index):
    """In this process: what train.py does before training (see the module docstring)."""
    import resource
    from argparse import Namespace

    sys.path.insert(0, str(REPOSITORY))
    from common.distributed import Processes
    from common.folder_scan import load_training_data
    from common.split import split_train_validation

    started = time.perf_counter()
    settings = Namespace(data=str(folder), recursive=False, index_cache=index, min_tag_count=1)
    paths, targets, vocabulary = load_training_data(settings, Processes())
    split_train_validation(targets, 0.1, seed=0)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "images": len(paths), "tags": len(vocabulary),
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_measurement(folder, index=None, cold=False):
    if cold:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    command = [sys.executable, __file__, "--measure", str(folder), *(["--index", str(index)] if index else [])]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def touch_some_tag_files(folder, share):
    tag_files = sorted(folder.glob("*.txt"))
    for tag_file in tag_files[:: round(1 / share)]:
        tag_file.write_text(tag_file.read_text() + "edited_tag\n")


def can_empty_page_cache():
    return os.access("/proc/sys/vm/drop_caches", os.W_OK)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated image counts")
    parser.add_argument("--folder", help="where to generate the folders (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders for another run")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure, args.index)

    root = Path(args.folder or tempfile.mkdtemp(prefix="scan-bench-"))
    cold = can_empty_page_cache()
    rows = []
    for size in map(int, args.sizes.split(",")):
        folder = root / f"{size}"
        generated = write_folder(folder, size)
        if generated:
            print(f"wrote {size:,} images and {size:,} tag files in {generated:.0f} s")
        index = root / f"{size}.index.json"
        index.unlink(missing_ok=True)
        first = run_measurement(folder)
        run_measurement(folder, index)  # writes the index
        indexed = run_measurement(folder, index)
        touch_some_tag_files(folder, 0.01)
        touched = run_measurement(folder, index)
        row = {"size": size, "first": first, "indexed": indexed, "touched": touched}
        if cold:
            row["cold"] = run_measurement(folder, cold=True)
            row["cold_indexed"] = run_measurement(folder, index, cold=True)
        rows.append(row)
        print(f"{size:>9,} images: first {first['seconds']:6.1f} s | indexed {indexed['seconds']:6.1f} s | "
              f"touched 1 % {touched['seconds']:6.1f} s"
              + (f" | cold {row['cold']['seconds']:6.1f} s, cold indexed {row['cold_indexed']['seconds']:6.1f} s"
                 if cold else "") + f" | peak {first['peak_mib']:,.0f} MiB", flush=True)
    if not args.keep and not args.folder:
        subprocess.run(["rm", "-rf", str(root)], check=True)

    print(f"\nindexing a folder as train.py does, {os.cpu_count()} CPU cores"
          + ("" if cold else " (cold runs skipped: emptying the page cache needs root)"))
    columns = ["first", "indexed", "touched"] + (["cold", "cold_indexed"] if cold else [])
    print(f"{'images':>10} " + " ".join(f"{name:>13}" for name in columns) + f" {'s/1k first':>11} {'peak MiB':>9}")
    for row in rows:
        print(f"{row['size']:>10,} " + " ".join(f"{row[name]['seconds']:>11.1f} s" for name in columns)
              + f" {1000 * row['first']['seconds'] / row['size']:>11.3f} {row['first']['peak_mib']:>9,.0f}")
    if len(rows) > 1:
        growth = (rows[-1]["first"]["seconds"] / rows[0]["first"]["seconds"]) / (rows[-1]["size"] / rows[0]["size"])
        print(f"time per image at {rows[-1]['size']:,} / at {rows[0]['size']:,} images: {growth:.2f} "
              "(1.00 is linear growth)")


if __name__ == "__main__":
    main()
