"""Head-only training: cached backbone features against running the backbone every epoch.

    python bench/freeze_speed.py                   # 400 mosaics, resnet50 at 128 px, 10 epochs
    python bench/freeze_speed.py --arch resnet18 --image-size 64

`train.py --freeze-backbone` runs the frozen backbone once over the training and validation
images, keeps the features, and trains the new last layer on them. The usual way (and the
original tool's) runs every image through the backbone again in every epoch, even though the
backbone never changes. Both do the same work otherwise, in this one process: the same images,
the same loaders, the same head, optimizer and schedule, and a validation pass per epoch.
The time measured is from the first image read to the last epoch's end; start-up (imports,
building the model, scanning the folder) is the same for both and left out.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train  # noqa: E402
from bench.digit_mosaics import write_mosaics  # noqa: E402
from common.dataset import UnreadableImages  # noqa: E402
from common.distributed import Processes, Runtime  # noqa: E402
from common.passes import predict, train_one_epoch  # noqa: E402
from common.feature_cache import cache_features  # noqa: E402
from common.folder_scan import load_training_data  # noqa: E402
from common.loaders import make_loaders  # noqa: E402
from common.losses import make_loss  # noqa: E402
from common.model import build_model, classifier_head_name  # noqa: E402
from common.optimizer import Optimization, make_optimizer, make_scheduler  # noqa: E402
from common.split import split_data  # noqa: E402


def head_training(model, train_loader, validation_loader, args, device, backbone_every_epoch):
    """Train only the head for args.epochs; returns the seconds it took."""
    head = model.get_submodule(classifier_head_name(model))
    loss_function, unreadable = make_loss("bce"), UnreadableImages()
    optimizer = make_optimizer(head, 1e-3, 0.05)
    started = time.perf_counter()
    if backbone_every_epoch:
        for parameter in model.parameters():
            parameter.requires_grad_(parameter in set(head.parameters()))
        trained, loaders = model, (train_loader, validation_loader)
    else:
        run_args = argparse.Namespace(batch_size=args.batch_size, seed=0, data="")
        loaders = cache_features(model, (train_loader, validation_loader), run_args, device, "fp32",
                                       unreadable, Processes())
        trained = head
    scheduler = make_scheduler(optimizer, args.epochs * len(loaders[0]), 0.1)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    for epoch in range(args.epochs):
        if backbone_every_epoch:
            model.eval()  # a frozen backbone keeps its BatchNorm statistics
        train_one_epoch(trained, loaders[0], Optimization(loss_function, optimizer, scheduler, scaler),
                        Runtime(device, "fp32"), unreadable, f"epoch {epoch + 1}")
        predict(trained, loaders[1], device, "fp32", unreadable, loss_function)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400, help="mosaics (80 %% train, 20 %% validation)")
    parser.add_argument("--arch", default="resnet50", help="backbone")
    parser.add_argument("--image-size", type=int, default=128, help="input side in pixels")
    parser.add_argument("--epochs", type=int, default=10, help="epochs")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step")
    args = parser.parse_args()
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as temporary:
        write_mosaics(Path(temporary) / "images", args.images, seed=0, part=0)
        train_args = train.get_args_parser().parse_settings(
            ["--data", str(Path(temporary) / "images"), "--model", str(Path(temporary) / "m.pth"),
             "--image-size", str(args.image_size), "--batch-size", str(args.batch_size), "--no-augment",
             "--cache-mb", "0"],  # both decode as they read: the baseline every epoch, cached features once
            use_environment=False)
        single = Processes()
        paths, targets, vocabulary = load_training_data(train_args, single)
        split, _ = split_data(train_args, (paths, targets, vocabulary), None, Path(temporary) / "split.json", single)
        seconds = {}
        for name, every_epoch in (("backbone every epoch", True), ("cached features", False)):
            torch.manual_seed(0)
            model = build_model(args.arch, len(vocabulary), "none").to(device)
            loaders = make_loaders(train_args, paths, targets, split, device, augmentation="off",
                                   processes=single, for_training=every_epoch)[:2]
            seconds[name] = head_training(model, *loaders, args, device, every_epoch)
    print(f"\nfreeze speed: {len(paths)} mosaics, {args.arch} at {args.image_size} px, {args.epochs} epochs of "
          f"head-only training, {torch.get_num_threads()} CPU threads")
    for name, value in seconds.items():
        print(f"  {name:22} {value:7.1f} s")
    print(f"speed-up of cached features: {seconds['backbone every epoch'] / seconds['cached features']:.1f}x")


if __name__ == "__main__":
    main()
