"""The CUDA path end to end, in one command, as one table: run it whenever a GPU is at hand.

    python bench/gpu_check.py                        # one NVIDIA GPU: ResNet-50 at 224 px, 2,000 photos (~5 min)
    python bench/gpu_check.py --quick --device cpu   # the same stages, tiny, on the CPU (the slow tests run it)

Stages, each with its peak GPU memory:
    a  the network alone: forward in bf16 and fp16 at batch 256, and forward + backward, in images/s
    b  infer.py over 6-megapixel JPEGs with --decode cpu and --decode gpu, as a share of (a)'s forward
    c  train.py from the JPEG folder and from the in-memory cache, as a share of (a)'s forward + backward
    d  torchrun with one process (NCCL on a GPU), writing a model that loads
    e  bf16, fp16 and fp32 agreement of tag decisions
    f  ONNX export, checked with onnxruntime
Scripts run in this process (their main(), as the tests do), so that the memory figures are theirs.
"""

import argparse
import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

import infer  # noqa: E402
import train  # noqa: E402
from common.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint  # noqa: E402
from common.images import open_image  # noqa: E402
from common.transforms import IMAGENET_MEAN, IMAGENET_STD, decode_transform  # noqa: E402
from common.inference import Tagger  # noqa: E402
from common.model import build_model  # noqa: E402
from common.tagfiles import default_tag_file, format_tags  # noqa: E402

FULL = dict(arch="resnet50", image_size=224, batch=256, train_batch=128, photos=2000, photo_size=(3000, 2000),
            distinct=48, steps=20)
QUICK = dict(arch="resnet18", image_size=64, batch=8, train_batch=8, photos=24, photo_size=(320, 240), distinct=6,
             steps=3)
TAGS = [f"tag_{number:02d}" for number in range(20)]


def write_photo(path, size, seed):
    """A photo-like JPEG: smooth shapes, finer texture and sensor noise, tagged by its main colours."""
    rng = np.random.default_rng(seed)
    from PIL import Image

    def blobs(rows, columns):
        colours = rng.integers(0, 256, (rows, columns, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(colours).resize(size, Image.BICUBIC), dtype=np.float32)

    pixels = 0.7 * blobs(20, 30) + 0.3 * blobs(200, 300) + rng.integers(-20, 21, (size[1], size[0], 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    return [tag for number, tag in enumerate(TAGS) if rng.random() < 0.3 or number == seed % len(TAGS)]


def write_photos(folder, settings):
    """settings['photos'] JPEGs, copies of settings['distinct'] different ones (decoding costs the same)."""
    folder.mkdir(parents=True)
    with ProcessPoolExecutor() as pool:
        tags = list(pool.map(write_photo, [folder / f"distinct_{seed}.jpg" for seed in range(settings["distinct"])],
                             [settings["photo_size"]] * settings["distinct"], range(settings["distinct"])))
    for number in range(settings["photos"]):
        seed = number % settings["distinct"]
        target = folder / f"photo_{number:05d}.jpg"
        shutil.copyfile(folder / f"distinct_{seed}.jpg", target)
        default_tag_file(target).write_text(format_tags(tags[seed]))
    for seed in range(settings["distinct"]):
        (folder / f"distinct_{seed}.jpg").unlink()


class Memory:
    """Peak GPU memory of a stage (nothing to report on the CPU)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *_):
        self.peak = (f"{torch.cuda.max_memory_allocated() / 2 ** 30:.1f} GiB" if self.device.type == "cuda"
                     else "-")


def model_only(settings, device, precision, backward):
    """Images per second of the network alone on random pixels: forward at settings['batch'], forward and
    backward (with the optimizer's step) at settings['train_batch'], the batch train.py uses below."""
    model = build_model(settings["arch"], len(TAGS), "none").to(device).to(memory_format=torch.channels_last)
    model.train(backward)
    batch = settings["train_batch" if backward else "batch"]
    images = torch.randn(batch, 3, settings["image_size"], settings["image_size"], device=device)
    images = images.contiguous(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast(device.type, dtype=dtype), torch.set_grad_enabled(backward):
            output = model(images)
        if backward:
            output.float().sum().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(settings["steps"]):
        step()
    synchronize(device)
    return batch * settings["steps"] / (time.perf_counter() - started)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_script(module, *argv):
    """A script's main() in this process; returns what it printed."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        module.main([str(arg) for arg in argv])
    return output.getvalue()


def inference_rate(folder, model_path, device, decode):
    for sidecar in folder.glob("*.jpg.txt"):
        sidecar.unlink()
    printed = run_script(infer, "--input", folder, "--model", model_path, "--device", device.type, "--decode",
                         decode, "--overwrite")
    return float(printed.rsplit(" images/s", 1)[0].rsplit(", ", 1)[1])


def training_rate(folder, work, settings, device, cached):
    """Training images per second in the second epoch (the first warms up), from the run's metrics."""
    model = work / f"train_{'cache' if cached else 'folder'}.pth"
    run_script(train, "--data", folder, "--model", model, "--arch", settings["arch"], "--weights", "none",
               "--image-size", settings["image_size"], "--epochs", 2, "--device", device.type, "--yes",
               "--val-fraction", 0.05, "--cache-mb", 100_000 if cached else 0, "--batch-size",
               settings["train_batch"], "--small-input", "off")  # the network of (a), whatever the size
    with open(model.with_name(model.stem + ".metrics.csv"), newline="") as file:
        second = list(csv.DictReader(file))[1]
    trained = len(json.loads(model.with_name(model.stem + ".split.json").read_text())["train"])
    return trained / float(second["seconds"])


def torchrun_check(folder, work, settings, device):
    model = work / "torchrun.pth"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
               str(REPOSITORY / "train.py"), "--data", str(folder), "--model", str(model), "--arch", "resnet18",
               "--weights", "none", "--image-size", "64", "--epochs", "1", "--device", device.type, "--yes",
               "--batch-size", "8"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=work)
    if result.returncode != 0:
        return f"failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}"
    backend = "NCCL" if device.type == "cuda" else "gloo"
    return f"{backend}, model loads ({len(load_checkpoint(model)['tags'])} tags)"


def agreement(model_path, folder, device, settings):
    """Share of image-tag decisions each precision shares with fp32, on real photos."""
    checkpoint = load_checkpoint(model_path)
    photos = sorted(folder.glob("*.jpg"))[:64]
    pixels = torch.stack([decode_transform(settings["image_size"])(open_image(photo, min_size=settings["image_size"]))
                          for photo in photos])
    reference = Tagger(checkpoint, device, "fp32").probabilities(pixels).numpy() >= 0.5
    precisions = ("bf16", "fp16") if device.type == "cuda" else ("bf16",)
    shares = []
    for precision in precisions:
        decisions = Tagger(checkpoint, device, precision).probabilities(pixels).numpy() >= 0.5
        shares.append(f"{precision} {(decisions == reference).mean():.2%}")
    return ", ".join(shares)


def export_check(model_path, folder, work, device, settings):
    import onnxruntime

    run_script(infer, "--model", model_path, "--export-onnx", work / "model.onnx", "--device", device.type)
    session = onnxruntime.InferenceSession(str(work / "model.onnx"), providers=["CPUExecutionProvider"])
    checkpoint = load_checkpoint(model_path)
    pixels = torch.stack([decode_transform(settings["image_size"])(open_image(photo))
                          for photo in sorted(folder.glob("*.jpg"))[:4]])
    tagger = Tagger(checkpoint, torch.device("cpu"), "fp32")
    from common.transforms import normalize_batch

    batch = normalize_batch(pixels, checkpoint["mean"], checkpoint["std"])
    (exported,) = session.run(["probabilities"], {"images": batch.numpy()})
    difference = np.abs(exported - tagger.probabilities(pixels).numpy()).max()
    return f"onnxruntime agrees within {difference:.1e}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (the point of this check) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that every stage runs")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("error: no CUDA GPU is visible to PyTorch here; run with --quick --device cpu to try the stages")
    settings = QUICK if args.quick else FULL
    rows, started = [], time.perf_counter()

    def row(stage, what, value, share="", memory="-"):
        rows.append((stage, what, value, share, memory))
        print(f"{stage} {what}: {value} {share}", flush=True)

    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        folder = work / "photos"
        write_photos(folder, settings)
        model_path = work / "model.pth"
        model = build_model(settings["arch"], len(TAGS), "none").eval()
        save_checkpoint(make_checkpoint(model, arch=settings["arch"], tags=TAGS, thresholds=[0.5] * len(TAGS),
                                        image_size=settings["image_size"], mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                        settings={}, metrics={}, epoch=0), model_path)
        precisions = ("bf16", "fp16") if device.type == "cuda" else ("bf16",)
        rates = {}
        for backward in (False, True):
            for precision in precisions:
                with Memory(device) as memory:
                    rates[precision, backward] = model_only(settings, device, precision, backward)
                what = f"{settings['arch']} {precision} {'forward+backward' if backward else 'forward'}, batch " \
                       f"{settings['train_batch' if backward else 'batch']}"
                row("a", what, f"{rates[precision, backward]:.0f} images/s", memory=memory.peak)
        forward, training = rates[precisions[0], False], rates[precisions[0], True]
        for decode in ("cpu", "gpu"):
            if decode == "gpu" and device.type != "cuda":
                row("b", "infer.py --decode gpu", "n/a without CUDA")
                continue
            with Memory(device) as memory:
                rate = inference_rate(folder, model_path, device, decode)
            row("b", f"infer.py --decode {decode}, {settings['photos']} JPEGs", f"{rate:.0f} images/s",
                f"{rate / forward:.0%} of (a)", memory.peak)
        for cached in (False, True):
            with Memory(device) as memory:
                rate = training_rate(folder, work, settings, device, cached)
            row("c", f"train.py from the {'in-memory cache' if cached else 'JPEG folder'}", f"{rate:.0f} images/s",
                f"{rate / training:.0%} of (a)", memory.peak)
        row("d", "torchrun --nproc_per_node=1", torchrun_check(folder, work, settings, device))
        with Memory(device) as memory:
            agreeing = agreement(model_path, folder, device, settings)
        row("e", "tag decisions agreeing with fp32", agreeing, memory=memory.peak)
        row("f", "ONNX export", export_check(model_path, folder, work, device, settings))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\ngpu check on {name}, torch {torch.__version__}, {time.perf_counter() - started:.0f} s\n")
    print("| stage | what | result | share | peak GPU memory |\n|---|---|---|---|---|")
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
