"""Train a multi-label image tagger on a folder of images with sidecar tag files.

    python train.py --demo        # make a small demo dataset, train on it, then tag a folder with the model
    python train.py --data training/ --model models/tagger.pth --tags models/tagger_tags.txt
    python train.py --arch resnet18 --weights none --image-size 64 --epochs 4 --yes

Each setting comes from its flag, else an environment variable, else .env, else the block below.
"""

import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.checkpoint import make_checkpoint, save_checkpoint, write_tag_list
from common.dataset import (
    ImageTagDataset,
    UnreadableImages,
    build_vocabulary,
    collate_readable,
    default_tag_file,
    describe_pairing_problems,
    multi_hot,
    read_tag_file,
    read_tags_of,
    scan_folder,
    short_list,
    split_train_validation,
)
from common.demo import write_demo_dataset
from common.device import DEVICE_CHOICES, describe_device, pick_device
from common.errors import UserError, exit_on_user_error
from common.files import ensure_writable_folder
from common.images import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform
from common.metrics import evaluate
from common.model import DEFAULT_ARCH, WEIGHT_CHOICES, build_model, count_parameters
from common.settings import SettingsParser, require

# ----------------------------------------------------------------------------- settings
# The defaults. A flag, an environment variable or a .env key (in that order) overrides each one.
num_epochs = 10  # passes over the training images
batch_size = 32  # images per optimizer step; lower it if you run out of (GPU) memory
image_size = 224  # pixels: every image is resized to image_size x image_size
learning_rate = 1e-3  # AdamW's peak step size; it warms up, then decays to zero (one-cycle schedule)
weight_decay = 1e-4  # AdamW's weight decay
arch = DEFAULT_ARCH  # any torchvision classifier: resnet18/34/50/101/152, efficientnet_b0, convnext_tiny, ...
weights = "imagenet"  # imagenet (downloaded once) | none (train from scratch) | PATH to a .pth file
val_fraction = 0.2  # share of the images held out to measure the model; 0 trains on all of them
seed = 0  # makes the validation split and the initial weights repeatable
device = "auto"  # auto (cuda, then mps, then cpu) | cuda | mps | cpu
workers = min(4, os.cpu_count() or 1)  # background processes decoding images; 0 decodes in the main one
overwrite_countdown = 5  # seconds to wait, in a terminal, before replacing an existing model

# `--demo` runs with these instead of .env, so that it works in a fresh clone.
DEMO_FOLDER = Path("demo")
DEMO_SETTINGS = dict(data=str(DEMO_FOLDER / "train"), model=str(DEMO_FOLDER / "model.pth"),
                     tags=str(DEMO_FOLDER / "tags.txt"), arch="resnet18", weights="none", image_size=64,
                     epochs=12, batch_size=32, lr=2e-3, yes=True)


def get_args_parser():
    parser = SettingsParser(description="Train a multi-label image tagger on images with sidecar tag files.")
    parser.add_argument("--data", help="folder of training images and their tag files (.env: TRAINING)")
    parser.add_argument("--model", help="where to save the model checkpoint, e.g. models/tagger.pth (.env: MODEL)")
    parser.add_argument("--tags", help="where to save the tag list: .txt, .json or .pkl (.env: TAGS); "
                                       "default: beside the model, as NAME_tags.txt")
    parser.add_argument("--arch", default=arch, help="torchvision architecture (.env: ARCH)")
    parser.add_argument("--weights", default=weights, help=f"starting weights: {WEIGHT_CHOICES} (.env: WEIGHTS)")
    parser.add_argument("--epochs", type=int, default=num_epochs, help="passes over the data (.env: EPOCHS)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="images per step (.env: BATCH_SIZE)")
    parser.add_argument("--image-size", type=int, default=image_size, help="input side in pixels (.env: IMAGE_SIZE)")
    parser.add_argument("--lr", type=float, default=learning_rate, help="peak learning rate (.env: LEARNING_RATE)")
    parser.add_argument("--weight-decay", type=float, default=weight_decay, help="AdamW weight decay")
    parser.add_argument("--val-fraction", type=float, default=val_fraction,
                        help="share held out for validation (.env: VAL_FRACTION)")
    parser.add_argument("--seed", type=int, default=seed, help="random seed (.env: SEED)")
    parser.add_argument("--device", default=device, help=f"{' | '.join(DEVICE_CHOICES)} (.env: DEVICE)")
    parser.add_argument("--workers", type=int, default=workers, help="image-decoding processes (.env: WORKERS)")
    parser.add_argument("--recursive", action="store_true", help="also read images in subfolders of --data")
    parser.add_argument("--yes", action="store_true", help="replace an existing model without the countdown")
    parser.add_argument("--demo", action="store_true",
                        help=f"generate a demo dataset in {DEMO_FOLDER}/, train on it and tag {DEMO_FOLDER}/infer")
    return parser


def load_training_data(args):
    """Scan the folder, name what cannot be used, and return (image paths, tag lists, vocabulary)."""
    scan = scan_folder(args.data, recursive=args.recursive)
    for line in describe_pairing_problems(scan):
        print(f"warning: {line}")
    tags_of = read_tags_of(scan)
    if not tags_of:
        raise UserError(f"found no images with tag files in {args.data}. Each image needs a sidecar such as "
                        "cat1.jpg.txt (or cat1.txt) holding its tags; `python prepare.py check DIR` explains more.")
    vocabulary = build_vocabulary(tags_of.values())
    if not vocabulary:
        raise UserError(f"every tag file in {args.data} is empty, so there is nothing to learn. Add tags first.")
    print(f"data: {len(tags_of)} tagged images, {len(vocabulary)} tags, from {args.data}")
    return list(tags_of), list(tags_of.values()), vocabulary


def make_loaders(args, paths, targets, device):
    train_positions, validation_positions = split_train_validation(len(paths), args.val_fraction, args.seed)
    common = dict(batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate_readable,
                  pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)
    decode_size = args.image_size  # JPEGs decode at reduced size when far larger than the input

    def subset(positions, transform):
        return ImageTagDataset([paths[p] for p in positions], transform, targets[positions], decode_size)

    train_set = subset(train_positions, train_transform(args.image_size, IMAGENET_MEAN, IMAGENET_STD))
    # Dropping a last, partial batch avoids a batch of one, which BatchNorm cannot train on.
    train_loader = DataLoader(train_set, shuffle=True, drop_last=len(train_set) > args.batch_size,
                              generator=torch.Generator().manual_seed(args.seed), **common)
    validation_loader = None
    if validation_positions:
        validation_set = subset(validation_positions, eval_transform(args.image_size, IMAGENET_MEAN, IMAGENET_STD))
        validation_loader = DataLoader(validation_set, shuffle=False, **common)
    print(f"split: {len(train_positions)} for training, {len(validation_positions)} for validation")
    return train_loader, validation_loader


def train_one_epoch(model, loader, loss_function, optimizer, scheduler, device, unreadable, description):
    model.train()
    total_loss, total_images = 0.0, 0
    for batch in tqdm(loader, desc=description, leave=False, unit="batch"):
        unreadable.add(loader.dataset, batch.unreadable)
        if batch.images is None:
            continue
        images = batch.images.to(device, non_blocking=True)
        targets = batch.targets.to(device, non_blocking=True)
        loss = loss_function(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(images)
        total_images += len(images)
    return total_loss / max(total_images, 1), total_images


@torch.inference_mode()
def predict(model, loader, loss_function, device, unreadable):
    """Mean loss, targets and probabilities over a labelled loader."""
    model.eval()
    total_loss, all_targets, all_probabilities = 0.0, [], []
    for batch in loader:
        unreadable.add(loader.dataset, batch.unreadable)
        if batch.images is None:
            continue
        logits = model(batch.images.to(device, non_blocking=True))
        targets = batch.targets.to(device, non_blocking=True)
        total_loss += loss_function(logits, targets).item() * len(targets)
        all_targets.append(targets.cpu())
        all_probabilities.append(torch.sigmoid(logits).float().cpu())
    if not all_targets:
        return math.nan, None, None
    targets = torch.cat(all_targets)
    return total_loss / len(targets), targets.numpy(), torch.cat(all_probabilities).numpy()


def confirm_overwrite(model_path, yes):
    """Never replace a model silently: count down in a terminal, keep a backup elsewhere."""
    model_path = Path(model_path)
    if yes or not model_path.exists():
        return
    if sys.stdin.isatty() and sys.stdout.isatty():
        try:
            for remaining in range(overwrite_countdown, 0, -1):
                print(f"\r{model_path} exists and will be replaced in {remaining} s (Ctrl-C keeps it; --yes "
                      "skips this)", end="", flush=True)
                time.sleep(1)
        except KeyboardInterrupt:
            print(f"\nstopped: {model_path} was left as it was")
            raise SystemExit(130)
        print()
    else:
        backup = model_path.with_name(f"{model_path.stem}.previous{model_path.suffix}")
        os.replace(model_path, backup)
        print(f"kept the existing model as {backup} (pass --yes to replace it without a backup)")


def format_epoch_line(epoch, epochs, train_loss, validation, seconds, saved):
    line = f"epoch {epoch:>{len(str(epochs))}}/{epochs} | train loss {train_loss:.4f}"
    if validation:
        line += (f" | val loss {validation['loss']:.4f} | mAP {validation['mAP']:.3f} | micro-F1 "
                 f"{validation['micro_f1']:.3f} | TP {validation['tp']} FP {validation['fp']} "
                 f"FN {validation['fn']} TN {validation['tn']}")
    return line + f" | {seconds:.0f} s" + (" | saved" if saved else "")


def fit(model, train_loader, validation_loader, args, run_device, save_best):
    """The epoch loop. Calls save_best(epoch, metrics, thresholds) whenever validation mAP improves
    (every epoch, without a validation set) and returns the metrics of the best epoch."""
    loss_function = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, pct_start=0.2,
                                                    total_steps=max(args.epochs * len(train_loader), 1))
    thresholds = [0.5] * train_loader.dataset.targets.shape[1]  # until per-tag calibration exists
    unreadable = UnreadableImages()
    best = None
    for epoch in range(1, args.epochs + 1):
        started = time.time()
        train_loss, images_seen = train_one_epoch(model, train_loader, loss_function, optimizer, scheduler, run_device,
                                     unreadable, f"epoch {epoch}/{args.epochs}")
        if images_seen == 0:
            raise UserError(f"none of the {len(train_loader.dataset)} training images in {args.data} could be "
                            "read. Check them with `python prepare.py check`.")
        validation = None
        if validation_loader is not None:
            loss, targets, probabilities = predict(model, validation_loader, loss_function, run_device, unreadable)
            if targets is not None:
                validation = {"loss": loss, **evaluate(targets, probabilities, thresholds)}
        improved = best is None or validation is None or validation["mAP"] > best["mAP"]
        if improved:
            best = {"epoch": epoch, "train_loss": train_loss, **(validation or {})}
            save_best(epoch, best, thresholds)
        print(format_epoch_line(epoch, args.epochs, train_loss, validation, time.time() - started, improved))
    if unreadable.reasons:
        print(f"skipped {len(unreadable.reasons)} unreadable image(s): {short_list(unreadable.reasons, args.data)}")
    return best


def train_tagger(args):
    """The whole training stage. Returns the metrics of the saved (best) epoch."""
    require(args, "data", "training folder")
    model_path = Path(require(args, "model", "model path"))
    tags_path = Path(args.tags) if args.tags else model_path.with_name(f"{model_path.stem}_tags.txt")
    ensure_writable_folder(model_path.parent, "model")
    ensure_writable_folder(tags_path.parent, "tag list")
    torch.manual_seed(args.seed)
    run_device = pick_device(args.device)
    print(f"device: {describe_device(run_device)}")
    paths, tag_lists, vocabulary = load_training_data(args)
    train_loader, validation_loader = make_loaders(args, paths, multi_hot(tag_lists, vocabulary), run_device)
    model = build_model(args.arch, len(vocabulary), args.weights).to(run_device)
    print(f"model: {args.arch} ({count_parameters(model) / 1e6:.1f} M parameters), weights: {args.weights}")
    confirm_overwrite(model_path, args.yes)
    settings = {key: value for key, value in vars(args).items() if key not in ("demo", "yes", "debug")}
    saved = {}

    def save_best(epoch, metrics, thresholds):
        save_checkpoint(make_checkpoint(model, arch=args.arch, tags=vocabulary, thresholds=thresholds,
                                        image_size=args.image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                        settings=settings, metrics=metrics, epoch=epoch), model_path)
        write_tag_list(tags_path, vocabulary)
        saved.update(metrics)

    try:
        best = fit(model, train_loader, validation_loader, args, run_device, save_best)
    except KeyboardInterrupt:
        where = f"the best model so far (epoch {saved['epoch']}) is in {model_path}" if saved else "no model was saved"
        print(f"\ninterrupted: {where}")
        raise SystemExit(130)
    summary = ", ".join(f"{name} {best[name]:.3f}" for name in ("mAP", "micro_f1") if name in best)
    print(f"saved the model from epoch {best['epoch']} ({summary or 'no validation set'}) to {model_path}")
    print(f"saved the tag list ({len(vocabulary)} tags) to {tags_path}")
    return best


def run_demo(args):
    import infer  # the demo ends by tagging a folder, exactly as infer.py would

    truth = write_demo_dataset(DEMO_FOLDER)
    print(f"demo: wrote {args.data} (training images with tags) and {DEMO_FOLDER / 'infer'} (images to tag)")
    best = train_tagger(args)
    infer_args = infer.get_args_parser().parse_settings(
        ["--input", str(DEMO_FOLDER / "infer"), "--model", args.model, "--overwrite", "--device", args.device,
         "--workers", "0"], use_environment=False)
    infer.tag_folder(infer_args)
    print("\ndemo predictions (file: predicted | true):")
    for path, true_tags in list(truth.items())[:6]:
        predicted = read_tag_file(default_tag_file(path))
        print(f"  {path.name}: {', '.join(predicted) or '-'} | {', '.join(true_tags)}")
    print(f"\nthe demo's validation micro-F1 is {best.get('micro_f1', math.nan):.3f}. "
          f"Now point TRAINING at your own folder (see .env.example) and run python train.py.")
    return best


@exit_on_user_error
def main(argv=None):
    parser = get_args_parser()
    demo = "--demo" in (argv if argv is not None else sys.argv[1:])
    if demo:
        parser.set_defaults(**DEMO_SETTINGS)
    args = parser.parse_settings(argv, use_environment=not demo)
    return run_demo(args) if args.demo else train_tagger(args)


if __name__ == "__main__":
    main()
