"""Tag every image in a folder with a trained model, writing NAME.EXT.txt sidecar files.

    python infer.py                                    # INFERENCE_DIR and MODEL come from .env
    python infer.py --input photos/ --model models/tagger.pth --csv photos.csv
    python infer.py --input photos/ --model models/tagger.pth --merge --threshold 0.4

Existing sidecars are kept unless --overwrite or --merge is given. Each setting comes from its
flag, else an environment variable, else .env, else the block below.
"""

import contextlib
import csv
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.checkpoint import load_checkpoint, model_from_checkpoint, read_tag_list
from common.dataset import (
    ImageTagDataset,
    UnreadableImages,
    collate_readable,
    default_tag_file,
    format_tags,
    merge_into_tag_file,
    read_tag_file,
    scan_folder,
    short_list,
)
from common.device import DEVICE_CHOICES, describe_device, pick_device
from common.errors import UserError, exit_on_user_error
from common.files import atomic_write, ensure_writable_folder, write_text_atomically
from common.images import eval_transform
from common.settings import SettingsParser, require

# ----------------------------------------------------------------------------- settings
# The defaults. A flag, an environment variable or a .env key (in that order) overrides each one.
batch_size = 32  # images per forward pass; lower it if you run out of (GPU) memory
device = "auto"  # auto (cuda, then mps, then cpu) | cuda | mps | cpu
workers = min(4, os.cpu_count() or 1)  # background processes decoding images; 0 decodes in the main one
whitelist_file = "whitelist.txt"  # used when WHITELIST is not set and this file exists; else all tags allowed


def get_args_parser():
    parser = SettingsParser(description="Tag a folder of images with a trained multi-label tagger.")
    parser.add_argument("--input", help="folder of images to tag (.env: INFERENCE_DIR)")
    parser.add_argument("--model", help="checkpoint written by train.py (.env: MODEL)")
    parser.add_argument("--tags", help="tag list to check against the checkpoint's own (.env: TAGS)")
    parser.add_argument("--whitelist", help=f"file of the only tags to write (.env: WHITELIST); default: "
                                            f"{whitelist_file} if it exists, else every tag")
    parser.add_argument("--threshold", type=float,
                        help="one cut-off for every tag instead of the model's own (0.5 is its calibrated decision)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing sidecar files")
    existing.add_argument("--merge", action="store_true", help="add new tags to existing sidecar files")
    parser.add_argument("--csv", help="also write every image's probability for every tag to this CSV file")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="images per step (.env: BATCH_SIZE)")
    parser.add_argument("--workers", type=int, default=workers, help="image-decoding processes (.env: WORKERS)")
    parser.add_argument("--device", default=device, help=f"{' | '.join(DEVICE_CHOICES)} (.env: DEVICE)")
    parser.add_argument("--recursive", action="store_true", help="also tag images in subfolders of --input")
    return parser


def load_whitelist(path_setting, known_tags):
    """The set of tags allowed in sidecars, or None when every tag is allowed."""
    path = Path(path_setting) if path_setting else Path(whitelist_file)
    if not path.is_file():
        if path_setting:
            raise UserError(f"whitelist {path} does not exist: fix WHITELIST / --whitelist, or remove it to "
                            "allow every tag")
        return None
    allowed = set(read_tag_file(path))
    unknown = sorted(allowed - set(known_tags))
    if unknown:
        print(f"warning: {len(unknown)} whitelisted tag(s) in {path} are unknown to the model and can never be "
              f"written: {', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
    print(f"whitelist: {len(allowed & set(known_tags))} of the model's {len(known_tags)} tags allowed, from {path}")
    return allowed


def check_tag_list(tags_setting, checkpoint_tags):
    """The checkpoint carries its tags; a separate TAGS file must agree with them."""
    if not tags_setting:
        return
    path = Path(tags_setting)
    if not path.is_file():
        print(f"note: tag list {path} not found; using the {len(checkpoint_tags)} tags stored in the model")
        return
    listed = read_tag_list(path)
    if len(listed) != len(checkpoint_tags):
        raise UserError(f"tag list {path} has {len(listed)} tags but the model was trained on "
                        f"{len(checkpoint_tags)}: they belong to different models. Point TAGS / --tags at the "
                        "list saved with this model, or leave it unset.")
    if listed != checkpoint_tags:
        print(f"warning: tag list {path} differs from the model's own list; using the model's")


def choose_tags(probabilities, tags, thresholds, allowed):
    """Tags at or above their threshold, most probable first, limited to the whitelist."""
    order = np.argsort(-probabilities, kind="stable")
    return [tags[i] for i in order
            if probabilities[i] >= thresholds[i] and (allowed is None or tags[i] in allowed)]


def write_sidecar(image, existing_tag_file, tags, args):
    """Write the image's tags unless a sidecar exists; returns 'written', 'kept' or 'merged'."""
    if existing_tag_file is None or args.overwrite:
        write_text_atomically(existing_tag_file or default_tag_file(image), format_tags(tags))
        return "written"
    if args.merge:
        merge_into_tag_file(existing_tag_file, tags)
        return "merged"
    return "kept"


def tag_folder(args):
    """The whole inference stage. Returns counts of what happened to each image."""
    require(args, "input", "folder of images to tag")
    require(args, "model", "model file")
    checkpoint = load_checkpoint(args.model)
    tags = checkpoint["tags"]
    check_tag_list(args.tags, tags)
    allowed = load_whitelist(args.whitelist, tags)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold must be a probability between 0 and 1, not {args.threshold}")
    thresholds = np.array(checkpoint["thresholds"] if args.threshold is None else [args.threshold] * len(tags))
    if args.csv:
        ensure_writable_folder(Path(args.csv).resolve().parent, "CSV file")

    scan = scan_folder(args.input, recursive=args.recursive)
    if not scan.images:
        raise UserError(f"found no images in {args.input} (looked for .jpg .jpeg .png .webp .bmp .gif"
                        f"{'' if args.recursive else '; add --recursive to look in subfolders'})")
    run_device = pick_device(args.device)
    model = model_from_checkpoint(checkpoint, run_device)
    print(f"device: {describe_device(run_device)} | model: {checkpoint['arch']}, {len(tags)} tags, "
          f"{checkpoint['image_size']} px | images: {len(scan.images)} in {args.input}")

    transform = eval_transform(checkpoint["image_size"], checkpoint["mean"], checkpoint["std"])
    dataset = ImageTagDataset(scan.images, transform, decode_size=checkpoint["image_size"])
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers, shuffle=False,
                        collate_fn=collate_readable, pin_memory=run_device.type == "cuda")
    outcomes = {"written": 0, "kept": 0, "merged": 0}
    unreadable = UnreadableImages()
    started = time.time()
    with contextlib.ExitStack() as stack, torch.inference_mode():
        csv_writer = None
        if args.csv:  # streamed row by row, and only put in place once complete
            csv_writer = csv.writer(stack.enter_context(atomic_write(args.csv, "w", newline="")))
            csv_writer.writerow(["file", *tags])
        for batch in tqdm(loader, desc="tagging", unit="batch"):
            unreadable.add(dataset, batch.unreadable)
            if batch.images is None:
                continue
            probabilities = torch.sigmoid(model(batch.images.to(run_device))).float().cpu().numpy()
            for position, row in zip(batch.indices.tolist(), probabilities):
                image = scan.images[position]
                chosen = choose_tags(row, tags, thresholds, allowed)
                outcomes[write_sidecar(image, scan.tag_file_of.get(image), chosen, args)] += 1
                if csv_writer:
                    csv_writer.writerow([image.relative_to(scan.folder).as_posix(), *(f"{p:.5f}" for p in row)])
    report(outcomes, unreadable.reasons, scan.folder, time.time() - started, args)
    return {**outcomes, "unreadable": len(unreadable.reasons)}


def report(outcomes, unreadable, folder, seconds, args):
    if unreadable:
        print(f"skipped {len(unreadable)} unreadable image(s), which got no sidecar: {short_list(unreadable, folder)}."
              " Re-save or remove them.")
    tagged = sum(outcomes.values())
    hint = " (pass --overwrite or --merge to change them)" if outcomes["kept"] else ""
    print(f"tagged {tagged} image(s): {outcomes['written']} sidecars written, {outcomes['merged']} merged, "
          f"{outcomes['kept']} kept as they were{hint} | {len(unreadable)} unreadable | {seconds:.1f} s, "
          f"{tagged / max(seconds, 1e-9):.1f} images/s")
    if args.csv and tagged:
        print(f"probabilities written to {args.csv}")
    if tagged == 0:
        raise UserError(f"none of the {len(unreadable)} image(s) in {folder} could be read: "
                        f"{short_list(unreadable, folder)}")


@exit_on_user_error
def main(argv=None):
    return tag_folder(get_args_parser().parse_settings(argv))


if __name__ == "__main__":
    main()
