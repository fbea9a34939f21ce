"""Offline stand-ins for ImageNet weights: a torchvision ResNet pretrained on one real
classification task, saved as a plain state dict for `train.py --weights PATH`.

    python bench/pretrain.py                     # writes bench/.data/pretrained/resnet18_papirus.pth
    python bench/pretrain.py --task close        # writes bench/.data/pretrained/resnet18_close.pth
    python bench/pretrain.py --arch resnet50 --classes 600

The task: tell apart CLASSES application icons of the Papirus icon theme (Debian's
papirus-icon-theme; a source the suite's own sets never use), each drawn by hand at three
sizes (32, 48 and 64 px), with random crops, flips and colour changes. It runs at 112 px while
the suite fine-tunes at 64 px, so that, as with ImageNet weights (224 px) used on small
pictures, the pretrained filters meet objects smaller than the ones they learned on.

That task is far from the suite's digit mosaics and glyphs. `--task close` adds a second
stand-in, as close to the glyph sets as ImageNet is to photos: the same icons plus every Font
Awesome brand logo (a style the `fontawesome` set leaves out, so none of its items), each
drawn four times in random dark colours, sizes and places as that set draws its glyphs.
"""

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from PIL import Image
from torchvision import models
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from bench.real_sets import PRETRAINING_THEME, debian_package  # noqa: E402
from common.images import to_rgb  # noqa: E402
from common.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

PRETRAINED = Path(__file__).resolve().parent / ".data" / "pretrained"
SIZES = ("32x32", "48x48", "64x64")  # Papirus draws each icon anew at each of these sizes


def default_weights_path(arch, task="far"):
    return PRETRAINED / f"{arch}_{'papirus' if task == 'far' else task}.pth"


def render_icons(class_count, resolution, seed):
    """uint8 pictures (classes x 3 sizes) and their class numbers."""
    import cairosvg  # a benchmark requirement only (bench/requirements.txt)

    base = debian_package(PRETRAINING_THEME) / "usr/share/icons/Papirus"
    names = sorted(set.intersection(*({path.name for path in (base / size / "apps").glob("*.svg")
                                      if not path.is_symlink()} for size in SIZES)))
    names = [names[i] for i in np.random.default_rng(seed).permutation(len(names))[:class_count]]
    pictures, labels = [], []
    for label, name in enumerate(names):
        for size in SIZES:
            png = cairosvg.svg2png(url=str(base / size / "apps" / name), output_width=resolution,
                                   output_height=resolution)
            picture = to_rgb(Image.open(io.BytesIO(png)))
            pictures.append(torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1))
            labels.append(label)
    return torch.stack(pictures), torch.tensor(labels)


def render_brand_glyphs(first_label, resolution, seed, drawings=4):
    """Font Awesome's brand logos (never in the fontawesome set), drawn as that set draws its
    glyphs, at `resolution`: uint8 pictures and labels from first_label on."""
    from bench.real_sets import fontawesome_metadata, render_glyph

    icons, _ = fontawesome_metadata()
    brands = sorted(name for name, icon in icons.items() if "brands" in icon["svg"])
    rng = np.random.default_rng(seed)
    pictures, labels = [], []
    for label, name in enumerate(brands, first_label):
        for _ in range(drawings):
            glyph = render_glyph(icons[name]["svg"]["brands"]["raw"], rng, jitter=True)
            picture = to_rgb(glyph).resize((resolution, resolution), Image.BILINEAR)
            pictures.append(torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1))
            labels.append(label)
    return torch.stack(pictures), torch.tensor(labels), len(brands)


class AugmentedPictures(Dataset):
    def __init__(self, pictures, labels, resolution):
        self.pictures, self.labels = pictures, labels
        self.transform = v2.Compose([
            v2.RandomResizedCrop(resolution, scale=(0.35, 1.0), antialias=True), v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.3, 0.3, 0.3, 0.05), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, position):
        return self.transform(self.pictures[position]), self.labels[position]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18", help="torchvision ResNet to pretrain")
    parser.add_argument("--task", choices=("far", "close"), default="far",
                        help="far: Papirus icons; close: those and Font Awesome's brand logos")
    parser.add_argument("--classes", type=int, help="number of icons to tell apart (default: 1000 far, 700 close, "
                                                    "which adds the brand logos)")
    parser.add_argument("--resolution", type=int, default=112, help="training side in pixels")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the pictures")
    parser.add_argument("--seed", type=int, default=0, help="which icons, and the initial weights")
    parser.add_argument("--out", type=Path, help="where to save the state dict (default: bench/.data/pretrained/)")
    args = parser.parse_args()
    args.classes = args.classes or (700 if args.task == "close" else 1000)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    pictures, labels = render_icons(args.classes, args.resolution, args.seed)
    classes = args.classes
    if args.task == "close":
        glyphs, glyph_labels, brand_count = render_brand_glyphs(classes, args.resolution, args.seed)
        pictures, labels = torch.cat([pictures, glyphs]), torch.cat([labels, glyph_labels])
        classes += brand_count
    print(f"rendered {len(labels)} pictures of {classes} classes in {time.perf_counter() - started:.0f} s")
    loader = DataLoader(AugmentedPictures(pictures, labels, args.resolution), batch_size=64, shuffle=True,
                        num_workers=1, persistent_workers=True, drop_last=True)
    model = models.get_model(args.arch, weights=None, num_classes=classes).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=args.epochs * len(loader))
    for epoch in range(1, args.epochs + 1):
        model.train()
        correct = seen = 0
        for images, targets in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(images.contiguous(memory_format=torch.channels_last))
            loss = nn.functional.cross_entropy(logits.float(), targets, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            correct += (logits.argmax(1) == targets).sum().item()
            seen += len(targets)
        print(f"epoch {epoch}/{args.epochs} | loss {loss.item():.3f} | train accuracy {correct / seen:.3f} | "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    out = args.out or default_weights_path(args.arch, args.task)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)  # a plain torchvision state dict, like an ImageNet download
    print(f"saved {out}")


if __name__ == "__main__":
    main()
