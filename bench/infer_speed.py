"""Tagging speed on photo-sized JPEGs: infer.py's defaults against a per-image loop.

    python bench/infer_speed.py                  # 160 six-megapixel JPEGs, ResNet-50 at 224 px
    python bench/infer_speed.py --images 16      # a quicker look

Both contestants tag the same folder with the same ResNet-50 checkpoint (random weights, 100
tags: speed does not depend on what the weights are) at 224 px:

    per-image loop   for each image: PIL open, Resize((224, 224)), ToTensor, Normalize, a batch
                     of one, fp32, threshold, write the sidecar; what most tagger scripts do
    infer.py         its defaults: decoding workers, reduced-size JPEG decoding, batches,
                     channels-last, bf16 where the CPU has bf16 hardware

Each contestant runs in a fresh process on a quarter of the images and then on all of them, the
best of two runs of each; throughput is the marginal rate between the two, (N - N/4) / (t_N - t_N/4),
so start-up (loading the model, starting workers) cancels out. The limit is measured in the same
run: the network alone on decoded pixels, and decoding alone on one core, combined as if the two
overlapped perfectly on every core. Peak memory is the peak resident size of
the contestant's main process in the full run (infer.py's decoding workers come on top).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from common.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: E402
from common.files import write_text_atomically  # noqa: E402
from common.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from common.model import build_model  # noqa: E402
from common.tagfiles import default_tag_file, format_tags  # noqa: E402

PHOTO_SIZE = (3000, 2000)  # six megapixels, a typical camera or phone photo
TAG_COUNT = 100


def write_photos(folder, count, seed=0):
    """JPEGs with a photo's size and about a photo's file size (2.5 MB): large smooth shapes, finer
    texture and sensor-like noise, so that decoding costs what it costs on real photos."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = PHOTO_SIZE

    def blobs(rows, columns):
        random_colours = rng.integers(0, 256, (rows, columns, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(random_colours).resize(PHOTO_SIZE, Image.BICUBIC), dtype=np.float32)

    for number in range(count):
        pixels = 0.7 * blobs(20, 30) + 0.3 * blobs(200, 300) + rng.integers(-20, 21, (height, width, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"photo_{number:04d}.jpg", quality=90)


def write_model(path):
    torch.manual_seed(0)
    model = build_model("resnet50", TAG_COUNT, "none").eval()
    save_checkpoint(make_checkpoint(model, arch="resnet50", tags=[f"tag_{i:03d}" for i in range(TAG_COUNT)],
                                    thresholds=[0.5] * TAG_COUNT, image_size=224, mean=IMAGENET_MEAN,
                                    std=IMAGENET_STD, settings={}, metrics={}, epoch=0), path)


def per_image_loop(folder, model_path):
    """The baseline, written the way a first tagging script is."""
    from torchvision import transforms

    checkpoint = load_checkpoint(model_path)
    model = model_from_checkpoint(checkpoint, torch.device("cpu"))
    transform = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                                    transforms.Normalize(checkpoint["mean"], checkpoint["std"])])
    tags = checkpoint["tags"]
    with torch.no_grad():
        for path in sorted(folder.glob("*.jpg")):
            image = Image.open(path).convert("RGB")
            probabilities = torch.sigmoid(model(transform(image).unsqueeze(0)))[0]
            chosen = [tag for tag, p in zip(tags, probabilities.tolist()) if p >= 0.5]
            write_text_atomically(default_tag_file(path), format_tags(chosen))


# infer.py exactly as a user runs it (python infer.py --input F --model M), in a process that has
# not imported torch before the script does; then its time and peak memory as one JSON line.
RUN_INFER_PY = """
import json, runpy, sys, time
started = time.perf_counter()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
seconds = time.perf_counter() - started
from bench.infer_speed import peak_resident_mib
print(json.dumps({"seconds": seconds, "peak_mib": peak_resident_mib()}))
"""


def run_contestant(name, folder, model_path):
    """Run one contestant in a fresh process; returns (seconds, peak resident MiB)."""
    for sidecar in folder.glob("*.txt"):
        sidecar.unlink()
    if name == "per-image loop":
        command = [__file__, "--child", str(folder), str(model_path)]
    else:
        command = ["-c", RUN_INFER_PY, str(REPOSITORY / "infer.py"), "--input", str(folder), "--model", str(model_path)]
    output = subprocess.run([sys.executable, *command], capture_output=True, text=True, check=True, cwd=REPOSITORY,
                            env={**os.environ, "PYTHONPATH": str(REPOSITORY)}).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return result["seconds"], result["peak_mib"]


def peak_resident_mib():
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec; ru_maxrss would
    include the memory of the (large) benchmark process this one was forked from."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)


def child(folder, model_path):
    started = time.perf_counter()
    per_image_loop(Path(folder), Path(model_path))
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mib": peak_resident_mib()}))


def model_alone(model_path, batch_size=16, batches=12):
    """Images per second of the network alone, as infer.py runs it (its Tagger, batch 16, its
    precision, every core), on pixels already decoded."""
    from common.device import pick_device
    from common.inference import Tagger
    from common.precision import resolve_precision

    device = pick_device("cpu")
    tagger = Tagger(load_checkpoint(model_path), device, resolve_precision("auto", device))
    pixels = torch.randint(0, 256, (batch_size, 3, 224, 224), dtype=torch.uint8)
    for _ in range(3):  # warm-up: oneDNN picks and caches its kernels in the first calls
        tagger.probabilities(pixels)
    rates = []
    for _ in range(3):  # the best of three: the network's own speed, not a neighbour's interruptions
        started = time.perf_counter()
        for _ in range(batches):
            tagger.probabilities(pixels)
        rates.append(batch_size * batches / (time.perf_counter() - started))
    return max(rates)


def decoding_alone(folder):
    """Seconds of one core per image to decode (at reduced size) and resize, as infer.py's workers do."""
    from common.images import open_image
    from common.transforms import decode_transform

    torch.set_num_threads(1)
    transform, photos = decode_transform(224), sorted(folder.glob("*.jpg"))
    seconds = []
    for _ in range(2):  # the best of two: the first pass may find the files outside the page cache
        started = time.perf_counter()
        for photo in photos:
            transform(open_image(photo, min_size=224))
        seconds.append((time.perf_counter() - started) / len(photos))
    return min(seconds)


def measure_alone(what, folder, model_path):
    """One of the two parts of the limit, in a fresh process."""
    output = subprocess.run([sys.executable, __file__, "--alone", what, str(folder), str(model_path)],
                            capture_output=True, text=True, check=True, cwd=REPOSITORY,
                            env={**os.environ, "PYTHONPATH": str(REPOSITORY)}).stdout
    return float(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=160, help="JPEGs in the full run (a quarter in the short one)")
    parser.add_argument("--skip-loop", action="store_true", help="leave out the per-image loop (quicker)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--alone", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    if args.alone:
        what, folder, model_path = args.alone
        print(model_alone(Path(model_path)) if what == "model" else decoding_alone(Path(folder)))
        return None
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        full, quarter = work / "full", work / "quarter"
        print(f"writing {args.images} JPEGs of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} ...", flush=True)
        write_photos(full, args.images)
        quarter.mkdir()
        for photo in sorted(full.glob("*.jpg"))[: args.images // 4]:
            os.link(photo, quarter / photo.name)
        megabytes = sum(photo.stat().st_size for photo in full.glob("*.jpg")) / args.images / 1e6
        write_model(work / "model.pth")
        results = {}
        for name in ("per-image loop", "infer.py defaults")[1 if args.skip_loop else 0:]:
            # the best of two runs of each length: a single run on this shared machine varies by 10 % or more
            short = min(run_contestant(name, quarter, work / "model.pth")[0] for _ in range(2))
            long, peak = min(run_contestant(name, full, work / "model.pth") for _ in range(2))
            results[name] = ((args.images - args.images // 4) / (long - short), peak)
        model_rate = measure_alone("model", full, work / "model.pth")
        decode_seconds = measure_alone("decode", quarter, work / "model.pth")
    # The limit: every core busy all the time, each image costing its share of the network (which
    # uses every core) plus one core's decoding, the two perfectly overlapped.
    cores = os.cpu_count()
    limit = cores / (cores / model_rate + decode_seconds)
    print(f"\ninfer speed: {args.images} JPEGs of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} ({megabytes:.1f} MB each), "
          f"resnet50 at 224 px, {cores} CPUs, torch {torch.__version__}")
    print(f"{'':18} {'images/s':>9} {'peak MiB (main process)':>24}")
    for name, (rate, peak) in results.items():
        print(f"{name:18} {rate:9.1f} {peak:24.0f}")
    print(f"limit: the network alone {model_rate:.1f} images/s on {cores} cores ({1000 * cores / model_rate:.1f} ms "
          f"of a core per image) + decoding alone {1000 * decode_seconds:.1f} ms of a core per image "
          f"= {limit:.1f} images/s")
    print(f"infer.py reaches {results['infer.py defaults'][0] / limit:.0%} of the limit")
    if "per-image loop" in results:
        speed_up = results["infer.py defaults"][0] / results["per-image loop"][0]
        print(f"speed-up (infer.py / per-image loop): {speed_up:.2f}x")


if __name__ == "__main__":
    main()
