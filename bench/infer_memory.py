"""infer.py's memory stays flat however many images it tags: results stream to disk.

    python bench/infer_memory.py                 # 1,000 against 10,000 images
    python bench/infer_memory.py --images 2000   # a quicker look

Writes N small JPEGs and a ResNet-18 checkpoint (64 px, 50 tags), then runs infer.py in a fresh
process over N/10 and over N images, with the CSV and JSONL outputs on, and compares the
main process's peak resident memory. Tenfold the images should cost about nothing extra: the
only things that grow with the folder are its list of file names and the per-image counters.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.infer_speed import peak_resident_mib  # noqa: E402
from common.checkpoint import make_checkpoint, save_checkpoint  # noqa: E402
from common.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from common.model import build_model  # noqa: E402

TAG_COUNT = 50
IMAGE_SIZE = 64
BATCH_SIZE = 16  # infer.py's CPU default; one batch of inputs is 16 x 3 x 64 x 64 floats, 0.8 MB


def write_images(folder, count):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for number in range(count):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((96, 96), Image.BILINEAR).save(folder / f"image_{number:05d}.jpg", quality=85)


def write_model(path):
    torch.manual_seed(0)
    model = build_model("resnet18", TAG_COUNT, "none").eval()
    save_checkpoint(make_checkpoint(model, arch="resnet18", tags=[f"tag_{i:02d}" for i in range(TAG_COUNT)],
                                    thresholds=[0.5] * TAG_COUNT, image_size=IMAGE_SIZE, mean=IMAGENET_MEAN,
                                    std=IMAGENET_STD, settings={}, metrics={}, epoch=0), path)


def run_infer(folder, model, work):
    output = subprocess.run([sys.executable, __file__, "--child", str(folder), str(model), str(work)],
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def child(folder, model, work):
    import infer

    started = time.perf_counter()
    infer.tag_folder(infer.get_args_parser().parse_settings(
        ["--input", folder, "--model", model, "--csv", str(Path(work) / "out.csv"), "--jsonl",
         str(Path(work) / "out.jsonl"), "--batch-size", str(BATCH_SIZE)], use_environment=False))
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mib": peak_resident_mib()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000, help="images in the large run (a tenth in the small)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        print(f"writing {args.images} images ...", flush=True)
        write_images(work / "large", args.images)
        (work / "small").mkdir()
        for image in sorted((work / "large").iterdir())[: args.images // 10]:
            (work / "small" / image.name).hardlink_to(image)
        write_model(work / "model.pth")
        small = run_infer(work / "small", work / "model.pth", work)
        large = run_infer(work / "large", work / "model.pth", work)
    print(f"\ninfer memory: resnet18 at {IMAGE_SIZE} px, {TAG_COUNT} tags, batch {BATCH_SIZE}, CSV and JSONL on")
    print(f"{'images':>8} {'seconds':>8} {'peak MiB (main process)':>24}")
    for count, result in ((args.images // 10, small), (args.images, large)):
        print(f"{count:8d} {result['seconds']:8.1f} {result['peak_mib']:24.0f}")
    print(f"growth for {args.images - args.images // 10} more images: {large['peak_mib'] - small['peak_mib']:.1f} MiB")


if __name__ == "__main__":
    main()
