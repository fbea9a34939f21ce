"""Tag every image in a folder with a trained model, writing NAME.EXT.txt sidecar files.

    python infer.py                                    # INFERENCE_DIR and MODEL come from .env
    python infer.py --input photos/ --model models/tagger.pth --csv photos.csv
    python infer.py --input photos/ --model models/tagger.pth --merge --top-k 10 --sep ", "
    python infer.py --input labelled/ --model models/tagger.pth --evaluate
    python infer.py --model old.pth --tag-list old_tags.pkl --save-as new.pth   # convert an original-tool model

Images that already have a sidecar are skipped, so an interrupted run continues where it
stopped; --overwrite or --merge processes them again. Each setting comes from its flag, else
an environment variable, else .env, else the block below.
"""

import contextlib
import csv
import io
import json
import os
import sys
import time
from pathlib import Path

import common.idle_threads  # noqa: F401  (first: quiet Ctrl-C, and OpenMP threads that sleep, before torch loads)
import numpy as np

from common.choices import DECODE_CHOICES, DEVICE_CHOICES, PRECISION_CHOICES
from common.errors import UserError, exit_on_user_error, loading_libraries
from common.files import (atomic_write, check_output_file, check_writable_folder, remove_leftover_temporaries,
                          tag_folder_lock)
from common.folder_scan import scan_folder, short_list
from common.settings import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, SettingsParser, number, require, whole_number
from common.tagfiles import read_tag_file, tag_file_names, write_sidecar

# torch, and the modules built on it, are imported inside the functions that tag, once the
# settings are parsed: --help and a mistyped setting answer at once instead of after 5 seconds.

# ----------------------------------------------------------------------------- settings
# The defaults. A flag, an environment variable or a .env key (in that order) overrides each one.
batch_size = None  # images per forward pass: None means 64 on a GPU, 16 on a CPU (faster there: fits its caches)
device = "auto"  # auto (cuda, then mps, then cpu) | cuda | mps | cpu
precision = "auto"  # auto (bf16/fp16 on CUDA, bf16 on CPUs with bf16 hardware, else fp32) | fp32 | bf16 | fp16
decode = "auto"  # auto (gpu on CUDA, else cpu) | gpu: JPEGs decoded on the GPU with nvJPEG | cpu: by the workers
workers = min(4, os.cpu_count() or 1)  # background processes decoding images; 0 decodes in the main one
whitelist_file = "whitelist.txt"  # used when WHITELIST is not set and this file exists; else all tags allowed
separator = "\n"  # between tags in new sidecars: one per line (gallery-dl style) or ", " (kohya captions)
sidecar_style = "ext"  # new sidecars as ext: NAME.EXT.txt (gallery-dl) | stem: NAME.txt (kohya, DeepDanbooru)
legacy_image_size = 224  # input side of a bare state-dict model from the original tool, which does not record it


EXAMPLES = """examples:
  python infer.py --input photos/ --model models/tagger.pth              # NAME.EXT.txt beside each image
  python infer.py --input photos/ --model models/tagger.pth --whitelist only.txt --top-k 10 --csv photos.csv
  python infer.py --input labelled/ --model models/tagger.pth --evaluate # score it, write nothing
  python infer.py --input photos/ --model models/tagger.pth --html photos.html  # a contact sheet to review
"""


def get_args_parser():
    parser = SettingsParser(description="Tag a folder of images with a trained multi-label tagger.", epilog=EXAMPLES)
    parser.renamed_flags = {"--tags": "--tag-list"}
    add = parser.add_argument
    add("--input", help="folder of images to tag (.env: INFERENCE_DIR)")
    add("--model", help="checkpoint written by train.py, or a bare state dict from the original tool (.env: MODEL)")
    add("--tag-list", "--tags", dest="tags",
        help="the model's tag list: checked against a checkpoint's own; required for a bare state dict (.env: TAGS)")
    add("--whitelist", help=f"file of the only tags to write (.env: WHITELIST); default: {whitelist_file} if it "
                            "exists, else every tag")
    add("--blacklist", help="file of tags never to write (.env: BLACKLIST)")
    add("--threshold", type=number(0, 1), help="one cut-off for every tag instead of the model's own (0.5 is its "
                                        "calibrated decision)")
    add("--top-k", type=whole_number(1), help="write at most this many tags per image, the most probable first")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing sidecar files")
    existing.add_argument("--merge", action="store_true", help="add new tags to existing sidecar files")
    existing.add_argument("--evaluate", action="store_true", help="compare predictions with the existing "
                          "sidecars (precision, recall, F1, mAP) and write nothing")
    add("--sep", default=separator, help='between tags in new sidecars, e.g. ", " for one comma-separated line')
    add("--sidecar-style", default=sidecar_style, choices=["ext", "stem"],
        help="name new sidecars NAME.EXT.txt (ext) or NAME.txt (stem)")
    add("--csv", help="also write every image's probability for every tag to this CSV file")
    add("--jsonl", help="also write each image's chosen tags and their probabilities, one JSON line per image")
    add("--html", help="also write a page to look at: on images that already have tag files, the review page of "
                       "the tags the model would add and those it doubts (likeliest first), whose decisions prepare.py "
                       "fix applies; else a contact sheet of each image with its tags, to filter by tag")
    add("--print-probs", action="store_true", help="print each image's tags with their probabilities")
    add("--batch-size", type=whole_number(1), default=batch_size, help="images per step (.env: BATCH_SIZE)")
    add("--workers", type=whole_number(0), default=workers, help="image-decoding processes (.env: WORKERS)")
    add("--device", default=device, help=f"{' | '.join(DEVICE_CHOICES)} (.env: DEVICE)")
    add("--precision", default=precision, choices=PRECISION_CHOICES, help="arithmetic precision (.env: PRECISION)")
    add("--decode", default=decode, choices=DECODE_CHOICES,
        help="where JPEGs are decoded: gpu (nvJPEG, in batches), cpu (in the workers); auto: gpu on CUDA "
             "(.env: DECODE)")
    add("--compile", action="store_true", help="compile the model with torch.compile (pays off on big folders)")
    add("--recursive", action="store_true", help="also tag images in subfolders of --input")
    add("--arch", type=str.lower, help="architecture of a bare state dict, when it is not recognised (.env: ARCH)")
    add("--image-size", type=whole_number(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), default=legacy_image_size,
        help="input side of a bare state dict (.env: IMAGE_SIZE); checkpoints record their own")
    add("--save-as", help="convert --model (e.g. a bare state dict) into a checkpoint at this path, then stop")
    add("--export-onnx", help="write --model as ONNX (dynamic batch size) to this path, then stop")
    return parser


def images_to_run(scan, args):
    """Every image with --overwrite, --merge, --evaluate or a table or page to fill; else only the
    images without a sidecar, so that a second run continues where an interrupted one stopped."""
    if args.evaluate:
        return [image for image in scan.images if image in scan.tag_file_of]
    if args.overwrite or args.merge or args.csv or args.jsonl or args.html:
        return scan.images
    return [image for image in scan.images if image not in scan.tag_file_of]


# ----------------------------------------------------------------------------- the CSV and JSONL tables
def csv_header(tags):
    line = io.StringIO(newline="")
    csv.writer(line).writerow(["file", *tags])
    return line.getvalue()


def open_tables(stack, args, tags, processes):
    """The optional CSV and JSONL writers; each file is streamed and only put in place once complete.
    Under torchrun each process writes its own part, and the main process joins them afterwards."""
    from common.distributed import part_path

    def where(path):
        return part_path(path, processes) if processes.is_distributed else path

    csv_writer = jsonl_file = None
    if args.csv:
        csv_file = stack.enter_context(atomic_write(where(args.csv), "w", newline=""))
        csv_writer = csv.writer(csv_file)
        if not processes.is_distributed:  # join_tables writes the header of the joined file
            csv_file.write(csv_header(tags))
    if args.jsonl:
        jsonl_file = stack.enter_context(atomic_write(where(args.jsonl), "w"))
    return csv_writer, jsonl_file


def join_tables(args, tags, processes):
    """Under torchrun: the main process puts the processes' parts together, in the folder's order."""
    from common.distributed import join_parts

    if processes.is_distributed:
        if args.csv:
            join_parts(args.csv, processes, header=csv_header(tags))
        if args.jsonl:
            join_parts(args.jsonl, processes)


def tag_images(tagger, scan, pending, args, choose, unreadable, processes):
    """Run the model over the pending images and write each one's outputs as soon as it is done."""
    from tqdm.auto import tqdm

    from common.distributed import gather_objects
    from common.inference import closest_call

    tags = tagger.tags
    outcomes = {"written": 0, "merged": 0, "kept": 0}
    if not pending and not processes.is_distributed:
        return outcomes
    stems_taken = {}
    for image in scan.images:
        stems_taken[(image.parent, image.stem)] = stems_taken.get((image.parent, image.stem), 0) + 1
    sheet = []  # --html: (name, path, chosen tags, closest call, (its tags now, probabilities) when it had a tag file)
    reviewing = args.html and not (args.overwrite or args.merge)  # the tag files stay as they were: compare them
    with contextlib.ExitStack() as stack:
        csv_writer, jsonl_file = open_tables(stack, args, tags, processes)
        for positions, probabilities in tagger.run(pending, args.batch_size, args.workers, unreadable):
            for position, row in zip(positions, probabilities):
                image = pending[position]
                chosen = choose(row)
                existing = scan.tag_file_of.get(image)
                keep = existing is not None and not (args.overwrite or args.merge)
                outcomes["kept" if keep else write_sidecar(image, existing, [tags[i] for i in chosen], args,
                                                           stems_taken)] += 1
                name = image.relative_to(scan.folder).as_posix()
                if csv_writer:
                    csv_writer.writerow([name, *(f"{p:.5f}" for p in row)])
                if jsonl_file:
                    jsonl_file.write(json.dumps({"file": name, "tags": {tags[i]: round(float(row[i]), 5)
                                                                        for i in chosen}}, ensure_ascii=False) + "\n")
                if args.html:
                    closest, distance = closest_call(row, choose.thresholds, choose.usable)
                    tagged = (read_tag_file(existing), row.astype(np.float32)) \
                        if reviewing and existing is not None else None
                    sheet.append((name, image, {tags[i]: round(float(row[i]), 3) for i in chosen},
                                  [tags[closest], round(float(row[closest]), 3), round(distance, 4)], tagged))
                if args.print_probs:
                    tqdm.write(f"{name}: " + (", ".join(f"{tags[i]} {row[i]:.3f}" for i in chosen) or "(no tags)"))
    join_tables(args, tags, processes)
    if args.html:
        sheet = [entry for part in gather_objects(sheet) for entry in part]
        if processes.is_main:
            reviewed = [(name, *tagged) for name, _, _, _, tagged in sheet if tagged is not None]
            if reviewed:
                write_review(args, reviewed, choose, tags, len(sheet))
            else:
                write_contact_sheet(args, sheet)
    return outcomes


def write_review(args, reviewed, choose, tags, image_count):
    """--html on images that already have tag files: the review page of what the model would change
    in them, the likeliest fixes first (common/review.py); reviewed: (name, its tags, probabilities)."""
    from common.review import suggestion_items, write_review_page

    items = suggestion_items(reviewed, choose.thresholds, choose.usable, tags)
    changed = len({item["targets"][0] for item in items})
    summary = (f"{len(items)} suggested change(s) to the tag files of {changed} of the {len(reviewed)} tagged "
               f"image(s) of {args.input}, by {args.model}; {time.strftime('%Y-%m-%d %H:%M')}. Add: the model sees the "
               "tag above its threshold; remove: a tag in the file that it sees below. Accept (a) or reject (r) each, "
               f"save the decisions (e), then `python prepare.py fix {args.input} --suspects SAVED.csv`."
               + (f" The {image_count - len(reviewed)} image(s) without tag files got the model's tags, not shown here."
                  if image_count > len(reviewed) else ""))
    title = f"{Path(args.input).resolve().name}: {Path(args.model).name} suggests"
    tags_of = {name: image_tags for name, image_tags, _ in reviewed}  # read once already, while tagging
    size = write_review_page(args.html, title, summary, "suggestions", Path(args.input), items, tags, tags_of)
    print(f"wrote the review page {args.html} ({size / 1e6:.1f} MB, {len(items)} suggestion(s)): open it in a browser")


def write_contact_sheet(args, sheet):
    """--html on untagged images: one page with a thumbnail per image, its tags and its closest call
    (common/pages.py)."""
    from common.pages import contact_sheet_data, write_page

    sheet = [entry[:4] for entry in sheet]
    summary = (f"{len(sheet)} image(s) of {args.input} tagged by {args.model}; "
               f"{time.strftime('%Y-%m-%d %H:%M')}. Type a tag to see only its images; sort by the closest "
               "calls (a tag's probability nearest its threshold) to review the doubtful ones first.")
    title = f"{Path(args.input).resolve().name}: tagged by {Path(args.model).name}"
    size = write_page(args.html, contact_sheet_data(title, sheet, summary))
    print(f"wrote the contact sheet {args.html} ({size / 1e6:.1f} MB): open it in a browser")


def evaluate_folder(tagger, scan, pending, args, thresholds, unreadable):
    """--evaluate: score the model against the sidecars already there, writing nothing."""
    from common.distributed import gather_objects
    from common.inference import evaluate_tagger
    from common.metrics import format_tag_report

    truth = [read_tag_file(scan.tag_file_of[image]) for image in pending]
    unknown = set().union(*gather_objects({tag for image_tags in truth for tag in image_tags} - set(tagger.tags)))
    if unknown:
        print(f"note: {len(unknown)} tag(s) in the sidecars are unknown to the model and are not scored: "
              f"{', '.join(sorted(unknown)[:10])}{' ...' if len(unknown) > 10 else ''}")
    scores, report = evaluate_tagger(tagger, pending, truth, thresholds, args.batch_size, args.workers, unreadable)
    if scores:
        print(f"evaluated {scores['images']} image(s) against their sidecars: mAP {scores['mAP']:.3f} | micro "
              f"precision {scores['precision']:.3f} recall {scores['recall']:.3f} F1 {scores['micro_f1']:.3f} | "
              f"macro-F1 {scores['macro_f1']:.3f}\nper tag, worst first:\n"
              f"{format_tag_report(report, limit=len(report))}")
    return scores["images"] if scores else 0  # over every process: evaluate_tagger gathers their predictions


def check_options(args):
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold must be a probability between 0 and 1, not {args.threshold}")
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be at least 1, not {args.top_k}")
    if args.html and args.evaluate:
        raise UserError("--html draws the tags infer.py writes, and --evaluate writes none: leave one of them out")
    for table in (args.csv, args.jsonl, args.html):
        if table and not args.evaluate:
            check_output_file(table, "output file")


def tag_folder(args):
    """The whole inference stage. Returns counts of what happened to the images. Under torchrun
    each process tags a consecutive share of the images (writing their sidecars itself), and the
    main process joins the CSV and JSONL parts and reports for all of them."""
    with contextlib.ExitStack() as held:  # the folder's lock, once taken, until the end
        return tag_or_convert(args, held)


def tag_or_convert(args, held):
    """tag_folder's work: --save-as or --export-onnx converts the model and stops; else the folder's
    images are tagged (or, with --evaluate, scored). `held` keeps the folder's lock until
    tag_folder returns."""
    require(args, "model", "model file")  # named before torch loads
    with loading_libraries():  # torch and everything built on it (a Ctrl-C meanwhile ends at once)
        from common.checkpoint import load_model_file
        from common.dataset import UnreadableImages
        from common.device import describe_device
        from common.distributed import contiguous_shard, gather_objects, start_processes, sum_across_processes
        from common.export import convert_or_export
        from common.inference import Tagger, check_tag_list, make_tag_chooser, read_tag_filter
        from common.jpeg_decode import resolve_decode
        from common.precision import resolve_precision

    processes, run_device = start_processes(args.device, backend="gloo")  # only counts and names are exchanged
    checkpoint = load_model_file(args.model, args.tags, args.arch, args.image_size)
    given = getattr(args, "given", {})
    ignored = [given[name] for name in ("arch", "image_size") if name in given]
    if ignored and "converted_from" not in checkpoint["settings"]:
        print(f"note: {' and '.join(ignored)} ignored: {args.model} records its own ({checkpoint['arch']}, "
              f"{checkpoint['image_size']} px)")
    if args.save_as or args.export_onnx:
        return convert_or_export(checkpoint, args) if processes.is_main else None
    require(args, "input", "folder of images to tag")
    tags = checkpoint["tags"]
    check_tag_list(args.tags, checkpoint)
    check_options(args)
    run_decode = resolve_decode(args.decode, run_device)
    thresholds = np.array(checkpoint["thresholds"] if args.threshold is None else [args.threshold] * len(tags))
    allowed = read_tag_filter(args.whitelist, tags, "whitelist", whitelist_file)
    blocked = read_tag_filter(args.blacklist, tags, "blacklist")

    if not args.evaluate and processes.is_main and Path(args.input).is_dir():
        held.enter_context(tag_folder_lock(args.input))  # before the scan: no other run is writing now
    scan = scan_folder(args.input, recursive=args.recursive)
    if not args.evaluate and processes.is_main:  # what a run killed mid-write left (sidecars, tables)
        remove_leftover_temporaries([*(image.with_name(name) for image in scan.images
                                       for name in tag_file_names(image.name)),
                                     *filter(None, (args.csv, args.jsonl, args.html))])
    if not scan.images:
        raise UserError(f"found no images in {args.input} (looked for .jpg .jpeg .png .webp .bmp .gif"
                        f"{'' if args.recursive else '; add --recursive to look in subfolders'})")
    pending = images_to_run(scan, args)
    skipped = len(scan.images) - len(pending)
    if pending and not args.evaluate:
        check_writable_folder(scan.folder, "tag files")
    run_precision = resolve_precision(args.precision, run_device)
    args.batch_size = args.batch_size or (64 if run_device.type == "cuda" else 16)
    tagger = Tagger(checkpoint, run_device, run_precision, args.compile, decode=run_decode)
    print(f"device: {describe_device(run_device)} | precision: {run_precision} | decode: {run_decode} | model: "
          f"{checkpoint['arch']}, "
          f"{len(tags)} tags, {checkpoint['image_size']} px | images: {len(scan.images)} in {args.input}"
          + (f" | processes: {processes.world_size}" if processes.is_distributed else ""))
    if args.evaluate and not pending:
        raise UserError(f"--evaluate needs images with sidecars holding their true tags, and {args.input} has none")
    if skipped:
        print(f"skipping {skipped} image(s) that already have sidecars (--overwrite or --merge to redo them)")

    unreadable = UnreadableImages()
    started = time.perf_counter()
    mine = contiguous_shard(pending, processes)  # all of them in a single process
    if args.evaluate:
        outcomes = {"evaluated": evaluate_folder(tagger, scan, mine, args, thresholds, unreadable)}
    else:
        choose = make_tag_chooser(tags, thresholds, allowed, blocked, args.top_k)
        outcomes = tag_images(tagger, scan, mine, args, choose, unreadable, processes)
        outcomes = dict(zip(outcomes, map(int, sum_across_processes(list(outcomes.values())))))
    reasons = {path: reason for part in gather_objects(unreadable.reasons) for path, reason in part.items()}
    print_summary(outcomes, skipped, reasons, scan.folder, time.perf_counter() - started, args)
    return {**outcomes, "skipped": skipped, "unreadable": len(reasons)}


def print_summary(outcomes, skipped, unreadable, folder, seconds, args):
    """The run's last lines: what happened to the images, how fast, which could not be read."""
    if unreadable:
        print(f"skipped {len(unreadable)} unreadable image(s), which got no sidecar: {short_list(unreadable, folder)}."
              " Re-save or remove them.")
    done = sum(outcomes.values())
    if args.evaluate:
        summary = f"evaluated {done} image(s), wrote nothing"
    else:
        hint = " (--overwrite or --merge would change them)" if outcomes["kept"] else ""
        summary = (f"tagged {done} image(s): {outcomes['written']} sidecars written, {outcomes['merged']} merged, "
                   f"{outcomes['kept']} kept{hint} | {skipped} skipped (had sidecars)")
    print(f"{summary} | {len(unreadable)} unreadable | {seconds:.1f} s, {done / max(seconds, 1e-9):.1f} images/s")
    for table in (args.csv, args.jsonl):
        if table and done and not args.evaluate:
            print(f"wrote {table}")
    if done == 0 and unreadable:
        raise UserError(f"none of the {len(unreadable)} image(s) in {folder} could be read: "
                        f"{short_list(unreadable, folder)}")


@exit_on_user_error
def main(argv=None):
    args = get_args_parser().parse_settings(argv)
    try:
        return tag_folder(args)
    finally:
        distributed = sys.modules.get("common.distributed")  # loaded once processes were started; a
        if distributed:  # setting refused before that must not wait for torch to load
            distributed.stop_processes()


if __name__ == "__main__":
    main()
