"""Get a folder of images ready for train.py.

    python prepare.py check training/                     # counts, tag frequencies and problems
    python prepare.py duplicates training/                # near-duplicate pictures, and their tags side by side
    python prepare.py tag new_photos/ --add "cat, indoor"   # add tags to every image's sidecar
    python prepare.py folders by_class/ training/          # class folders -> one folder with sidecars
    python prepare.py audit training/                     # find the tags most likely wrong or missing
    python prepare.py fix training/                       # apply the fixes marked in training.suspects.csv
    python prepare.py demo demo_data/                      # write the demo dataset

Nothing a user made is overwritten: tags are merged into existing sidecars, an image whose name is
taken in the destination by a different picture is renamed, and the audit's fixes change only the
tags a person marked, after writing an undo file.
"""

import contextlib
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import common  # noqa: F401  (first: a quiet Ctrl-C even while libraries load)
import numpy as np

from common.choices import RANKERS
from common.demo import write_demo_dataset
from common.duplicates import default_duplicates_path, file_digest, find_duplicates, fingerprint_cache_path
from common.errors import UserError, exit_on_user_error, loading_libraries
from common.files import check_output_file, copy_atomically, tag_folder_lock
from common.folder_scan import describe_pairing_problems, is_junk, read_tags_of, scan_folder, short_list
from common.groups import disagreeing_tags, write_group_file
from common.images import is_image_file
from common.settings import CommandParser, environment_setting, note_renamed_flags, whole_number
from common.suspects import apply_fixes, default_suspects_path, suspect_rows, undo_fixes, write_suspects
from common.tagfiles import default_tag_file, find_tag_file, merge_into_tag_file, parse_tags, read_tag_file

# torch (for `audit`) and scikit-learn (for the pages of `duplicates` and `audit`) are imported by
# those commands when they start: the others read and write text and pictures alone, and answer at once.

# ----------------------------------------------------------------------------- settings
min_tag_count = 5  # `check` lists tags seen on fewer images than this: too few to learn well
workers = min(4, os.cpu_count() or 1)  # processes decoding the pictures for `check` and `duplicates`
audit_folds = 4  # `audit` trains this many models, each judging the images the others trained on
audit_epochs = 5  # epochs per fold: short, since a fold only needs to tell likely tags from unlikely ones
audit_rows = 1000  # suspects written to the CSV, most suspicious first
RUNTIME_FLAGS = ("--device", "--workers", "--batch-size", "--precision", "--decode")  # what --from-model uses


# ----------------------------------------------------------------------------- tag
def add_tags(folder, tags, recursive=False, dry_run=False):
    """Merge `tags` into the sidecar of every image in `folder`, creating sidecars as needed."""
    scan = scan_folder(folder, recursive=recursive)
    if not scan.images:
        raise UserError(f"found no images in {folder}")
    changed, added_to = 0, Counter()
    for image in scan.images:
        added = merge_into_tag_file(scan.tag_file_of.get(image) or default_tag_file(image), tags, dry_run)
        added_to.update(added)
        changed += bool(added)
    verb = "would change" if dry_run else "changed"
    additions = ", ".join(f"{tag} to {added_to[tag]}" for tag in tags if added_to[tag]) or "nothing"
    print(f"tag: {verb} {changed} of {len(scan.images)} sidecar(s) in {folder}: {'would add' if dry_run else 'added'} "
          f"{additions}; {len(scan.images) - changed} already had every tag")
    return changed


# ----------------------------------------------------------------------------- folders
def collect_class_images(source):
    """{content hash: (source paths, tags)}: folder names become tags, nested folders give one
    tag each, and the same picture found under several folders gathers all of their tags."""
    groups = defaultdict(lambda: ([], []))
    for directory, subfolders, files in os.walk(source):
        subfolders[:] = sorted(name for name in subfolders if not is_junk(name))
        folder_tags = [part.strip() for part in Path(directory).relative_to(source).parts if part.strip()]
        for name in sorted(files):
            path = Path(directory, name)
            if is_junk(name) or not is_image_file(path):
                continue
            paths, tags = groups[file_digest(path)]
            paths.append(path)
            sidecar = find_tag_file(path)
            for tag in folder_tags + (read_tag_file(sidecar) if sidecar else []):
                if tag not in tags:
                    tags.append(tag)
    return groups


def free_destination(destination, name, content_hash, planned):
    """The path in `destination` for an image: its own name, unless a different picture already
    has it (on disk or earlier in this run), in which case NAME_1.EXT, NAME_2.EXT, ..."""
    stem, suffix = os.path.splitext(name)
    for attempt in range(100_000):
        candidate = destination / (name if attempt == 0 else f"{stem}_{attempt}{suffix}")
        owner = planned.get(candidate) or (file_digest(candidate) if candidate.exists() else None)
        if owner is None or owner == content_hash:
            return candidate
    raise UserError(f"could not find a free name for {name} in {destination}")


def convert_class_folders(source, destination, move=False, dry_run=False):
    """Turn SRC/cat/a.jpg, SRC/cat/indoor/b.jpg into DEST/a.jpg + a.jpg.txt ('cat'), DEST/b.jpg + b.jpg.txt
    ('cat', 'indoor'). Copies unless move=True; with dry_run=True only prints the plan."""
    source, destination = Path(source).resolve(), Path(destination).resolve()
    if not source.is_dir():
        raise UserError(f"source {source} is not a folder")
    if destination.exists() and not destination.is_dir():
        raise UserError(f"destination {destination} is a file, not a folder: choose a folder")
    if destination == source or destination.is_relative_to(source):
        raise UserError(f"destination {destination} is inside the source {source}: choose a folder outside it")
    groups = collect_class_images(source)
    if not groups:
        raise UserError(f"found no images in {source} or its subfolders")
    if not dry_run:
        destination.mkdir(parents=True, exist_ok=True)
    planned, renamed, duplicates, untagged, already_there = {}, 0, 0, [], 0
    for content_hash, (paths, tags) in groups.items():
        target = free_destination(destination, paths[0].name, content_hash, planned)
        planned[target] = content_hash
        renamed += target.name != paths[0].name
        duplicates += len(paths) - 1
        if not tags:
            untagged.append(paths[0])
        if dry_run:
            print(f"{paths[0].relative_to(source)} -> {target.name}: {', '.join(tags) or '(no tags)'}")
            continue
        if target.exists():
            already_there += 1  # the same picture: only its tags are merged
        else:
            copy_atomically(paths[0], target)
        merge_into_tag_file(find_tag_file(target) or default_tag_file(target), tags)
        if move:
            for path in paths:
                sidecar = find_tag_file(path)
                path.unlink()  # its content and tags now live in the destination
                if sidecar:
                    sidecar.unlink()
    action = "would " + ("move" if move else "copy") if dry_run else ("moved" if move else "copied")
    present = f", {already_there} already there (tags merged)" if already_there else ""
    print(f"folders: {action} {len(groups) - already_there} image(s) into {destination} from "
          f"{sum(len(p) for p, _ in groups.values())} in {source}{present} ({duplicates} duplicate(s) merged, "
          f"{renamed} renamed to avoid a name clash)")
    if untagged:
        print(f"note: {len(untagged)} image(s) lie directly in {source} and got no folder tag: "
              f"{short_list(untagged, source)}")
    return len(groups)


# ----------------------------------------------------------------------------- duplicates
def scan_images(folder, recursive):
    scan = scan_folder(folder, recursive=recursive)
    if not scan.images:
        raise UserError(f"found no images in {folder} (looked for .jpg .jpeg .png .webp .bmp .gif"
                        f"{'' if recursive else '; add --recursive to look in subfolders'})")
    return scan


def groups_with_tags(scan, found):
    """[(image names, their tags or None, tags that differ, identical files?)] for the groups of
    `found`, those whose tags differ first, then the largest."""
    tags_of = read_tags_of(scan)
    described = []
    for number, rows in enumerate(found.groups):
        images = [scan.images[row] for row in rows]
        tags = [tags_of.get(image) for image in images]
        names = [image.relative_to(scan.folder).as_posix() for image in images]
        described.append((names, tags, disagreeing_tags(tags), number in found.identical))
    return sorted(described, key=lambda group: (not group[2], -len(group[0])))


def find_folder_duplicates(args):
    """prepare.py duplicates: write DIR.duplicates.csv (group,image) and its page; change nothing else."""
    from common.pages import duplicates_data
    from common.review import duplicate_items, write_review_page

    folder = args.folder or environment_setting("TRAINING", args.env_file)
    if not folder:
        raise UserError("no folder to look in: pass it (prepare.py duplicates DIR) or set TRAINING in .env")
    output = Path(args.output) if args.output else default_duplicates_path(folder)
    check_output_file(output, "--output")
    if args.index_cache:
        check_output_file(args.index_cache, "--index-cache file")
    scan = scan_images(folder, args.recursive)
    started = time.perf_counter()
    found = find_duplicates(scan.images, args.workers, fingerprint_cache_path(args.index_cache), scan.folder)
    seconds = time.perf_counter() - started
    groups = groups_with_tags(scan, found)
    write_group_file(output, [(str(number), names) for number, (names, *_) in enumerate(groups, 1)])
    page = output.with_suffix(".html")
    disagreeing = sum(bool(differ) for _, _, differ, _ in groups)
    summary = (f"{len(groups)} groups of near-duplicates hold {found.image_count} of the {len(scan.images)} images of "
               f"{scan.folder}; {disagreeing} of them disagree on tags (one of the tag files is probably wrong: review "
               f"them above, with the keyboard, or in the list of groups below). train.py keeps each group on one side "
               f"of its split.")
    title = f"{scan.folder.name}: near-duplicates"
    tags_of = {name: image_tags for names, tags, _, _ in groups for name, image_tags in zip(names, tags)}
    vocabulary = {tag for image_tags in tags_of.values() for tag in image_tags or []}
    size = write_review_page(page, title, summary, "duplicates", scan.folder, duplicate_items(groups), vocabulary,
                             tags_of, extra=duplicates_data(title, groups, scan.folder, summary))
    if found.unreadable:
        print(f"skipped {len(found.unreadable)} unreadable image(s): {short_list(found.unreadable, scan.folder)}")
    print(f"duplicates: {summary} ({seconds:.1f} s)")
    for number, (names, _, differ, identical) in enumerate(groups[:5], 1):
        what = "identical files" if identical else "near-duplicates"
        print(f"  group {number}, {what}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
              f"{'; tags differ: ' + ', '.join(differ[:6]) if differ else ''}")
    print(f"wrote {output} (columns group,image) and {page} ({size / 1e6:.1f} MB). If a group is wrong, edit a copy "
          f"of the CSV (a new run rewrites this one), then train with --groups COPY --group-duplicates off")
    return groups


# ----------------------------------------------------------------------------- check
def check_folder(folder, recursive=False, min_count=min_tag_count, workers=0):
    """Print what train.py will see in `folder` and everything that needs attention."""
    scan = scan_images(folder, recursive)
    tags_of = read_tags_of(scan)
    frequency = Counter(tag for tags in tags_of.values() for tag in tags)
    empty = [image for image, tags in tags_of.items() if not tags]
    found = find_duplicates(scan.images, workers, folder=scan.folder)  # decodes every image: the unreadable ones too
    unreadable = found.unreadable
    groups = groups_with_tags(scan, found)
    disagreeing = sum(bool(differ) for _, _, differ, _ in groups)
    print(f"check: {scan.folder}")
    print(f"  images: {len(scan.images)} ({len(tags_of)} with a tag file, {len(empty)} of them empty)")
    print(f"  tags: {len(frequency)} distinct, {sum(frequency.values()) / max(len(tags_of), 1):.1f} per "
          "tagged image on average")
    if frequency:
        width = max(len(tag) for tag in frequency)
        print("  tag frequencies, most common first:")
        for tag, count in frequency.most_common():
            print(f"    {tag:<{width}}  {count}")
    rare = [f"{tag} ({count})" for tag, count in reversed(frequency.most_common()) if count < min_count]
    if rare:
        print(f"  {len(rare)} tag(s) on fewer than {min_count} images, hard to learn: {', '.join(rare)}")
    for line in describe_pairing_problems(scan):
        print(f"  {line}")
    if groups:
        print(f"  near-duplicates: {len(groups)} groups hold {found.image_count} images (train.py keeps each group on "
              f"one side of its split); {disagreeing} group(s) disagree on tags: `python prepare.py duplicates "
              f"{folder}` shows them side by side")
    for image, reason in unreadable.items():
        print(f"  unreadable: {image}: {reason}. Re-save or remove it.")
    if not unreadable and not describe_pairing_problems(scan):
        print("  no problems found")
    return {"images": len(scan.images), "tagged": len(tags_of), "tags": dict(frequency),
            "untagged": scan.untagged_images, "orphans": scan.orphan_tag_files, "unreadable": unreadable,
            "rare": [tag for tag, count in frequency.items() if count < min_count],
            "duplicate_groups": len(groups), "disagreeing_groups": disagreeing}


# ----------------------------------------------------------------------------- audit, fix, undo
def audit_folder(args, training_flags):
    """Rank the folder's image-tag pairs by how likely their labels are wrong; write the CSV and its page."""
    import train  # the folds train with train.py's recipe and settings (its flags, the environment, .env)
    with loading_libraries():  # torch and everything built on it (a Ctrl-C meanwhile ends at once)
        from common.audit import held_out_predictions, out_of_fold_probabilities
    from common.distributed import Runtime, from_main, start_processes
    from common.folder_scan import load_training_data
    from common.groups import related_images
    from common.model import is_pretrained, small_input_layout
    from common.review import suspect_items, write_review_page
    from common.precision import resolve_precision
    from common.preflight import check_training_settings

    folder = args.folder or environment_setting("TRAINING", args.env_file)
    if not folder and not args.from_model:
        raise UserError("no folder to audit: pass it (prepare.py audit DIR) or set TRAINING in .env")
    output = Path(args.output) if args.output else None
    train_args = train.get_args_parser().parse_settings(
        ["--data", folder or ".", "--epochs", str(args.epochs), "--env-file", args.env_file, *training_flags])
    if args.from_model:
        unused = [flag for flag in training_flags if flag.startswith("--") and flag.split("=")[0] not in RUNTIME_FLAGS]
        if unused:
            raise UserError(f"{' '.join(unused)}: --from-model judges with the model as it is; only "
                            f"{', '.join(RUNTIME_FLAGS)} apply to it")
    processes, device = start_processes(train_args.device)
    precision = resolve_precision(train_args.precision, device)
    if args.from_model:
        folder, names, targets, probabilities, tags = held_out_predictions(
            args.from_model, args.folder, device, precision, train_args.batch_size, train_args.workers)
        output = output or default_suspects_path(folder)
        check_output_file(output, "--output")
        how, fold_of = f"the {len(names)} validation images of {args.from_model}", None
    else:
        output = output or default_suspects_path(folder)
        check_training_settings(train_args, {"suspects": output})  # before any data is read
        layout = small_input_layout(train_args.small_input, train_args.arch, train_args.image_size,
                                    pretrained=is_pretrained(train_args.weights), fast_arithmetic=precision != "fp32")
        data = load_training_data(train_args, processes)
        # a group shares a fold, so that no copy judges its twin (found by the main process under torchrun)
        related = from_main(related_images(train_args, data[0]) if processes.is_main else None)
        work_folder = output.with_suffix(".folds")
        names, targets, probabilities, fold_of = out_of_fold_probabilities(
            train_args, data, args.folds, work_folder, Runtime(device, precision, processes), layout, related.group_of)
        tags = data[2]
        how = (f"{len(names)} images, each judged by the one of {args.folds} models ({train_args.arch}, "
               f"{train_args.epochs} epochs) that never saw it")
    rows = suspect_rows(names, tags, targets, probabilities, args.method, args.top, fold_of)
    write_suspects(output, rows)
    page = output.with_suffix(".html")
    summary = (f"{how}; ranked by {args.method}. Accept (a) or reject (r) each suspect, save the decisions (e), then "
               f"`python prepare.py fix {folder} --suspects SAVED.csv`; or mark the accept column of {output.name}.")
    write_review_page(page, f"{Path(folder).name}: suspect labels", summary, "suspects", folder, suspect_items(rows),
                      tags)
    if not args.from_model and not args.keep_folds:
        shutil.rmtree(output.with_suffix(".folds"), ignore_errors=True)  # done: nothing left to resume
    unreadable = [name for name, row in zip(names, probabilities) if np.isnan(row).any()]
    if unreadable:
        print(f"skipped {len(unreadable)} unreadable image(s), which no model could judge: "
              f"{short_list([Path(folder) / name for name in unreadable], Path(folder))}")
    print(f"audit: {how}")
    for row in rows[:10]:
        print(f"  {row['image']}: {row['tag']} {row['kind']} (probability {row['probability']:.3f})")
    print(f"wrote the {len(rows)} most suspicious image-tag pairs to {output} and {page}.\nnext: mark the rows to fix "
          f"(accept column: yes), then `python prepare.py fix {folder} --suspects {output}`; nothing changes before")
    return rows



EXAMPLES = """examples:
  python prepare.py check photos/                       # what train.py will see, and every problem
  python prepare.py duplicates photos/                  # near-duplicate pictures: photos.duplicates.csv and .html
  python prepare.py audit photos/ --arch resnet18       # rank the labels most likely wrong: photos.suspects.csv
  python prepare.py fix photos/                         # apply the rows marked in photos.suspects.csv
"""
RENAMED_FLAGS = {"--tags": "--add", "--min-count": "--min-tag-count"}


def get_args_parser():
    parser = CommandParser(description="Prepare image folders for multitag-trainer.", epilog=EXAMPLES)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    tag = commands.add_parser("tag", help="add tags to the sidecar of every image in a folder")
    tag.add_argument("folder", help="folder of images")
    tag.add_argument("--add", "--tags", dest="add", required=True,
                     help='comma-separated tags to add, e.g. "cat, indoor"')
    tag.add_argument("--recursive", action="store_true", help="include subfolders")
    tag.add_argument("--dry-run", action="store_true", help="only report what would change")

    folders = commands.add_parser("folders", help="turn class folders (SRC/cat/*.jpg) into sidecar tags in DEST")
    folders.add_argument("source", help="folder whose subfolder names are the tags")
    folders.add_argument("destination", help="folder to receive the images and their sidecars")
    folders.add_argument("--move", action="store_true", help="move the images instead of copying them")
    folders.add_argument("--dry-run", action="store_true", help="only print what would be done")

    check = commands.add_parser("check", help="report counts, tag frequencies and problems in a dataset")
    check.add_argument("folder", nargs="?", help="dataset folder (default: TRAINING from the environment or .env)")
    check.add_argument("--min-tag-count", "--min-count", dest="min_tag_count", type=whole_number(1),
                       default=min_tag_count, help="name the tags on fewer images than this as hard to learn")
    check.add_argument("--recursive", action="store_true", help="include subfolders")
    check.add_argument("--workers", type=whole_number(0), default=workers, help="processes decoding the images")
    check.add_argument("--env-file", default=".env", help="settings file read for TRAINING")

    duplicates = commands.add_parser(
        "duplicates", help="find near-duplicate pictures (resized, re-encoded, cropped, framed or brightened copies, "
                           "identical files): DIR.duplicates.csv and a page of each group's pictures and tags",
        description="Find the groups of near-duplicate pictures in a folder: copies resized, re-encoded, cropped by a "
                    "few per cent, framed or brightened, and identical files. Writes DIR.duplicates.csv (columns "
                    "group,image) and DIR.duplicates.html, which shows each group side by side with the tags that "
                    "differ highlighted. Changes no tag file.")
    duplicates.add_argument("folder", nargs="?", help="image folder (default: TRAINING from the environment or .env)")
    duplicates.add_argument("--output", help="the CSV (default: DIR.duplicates.csv beside the folder); the page goes "
                                             "beside it as .html")
    duplicates.add_argument("--recursive", action="store_true", help="include subfolders")
    duplicates.add_argument("--index-cache", default="",
                            help="keep the pictures' fingerprints in FILE.fingerprints.npz (as train.py --index-cache "
                                 "does): later runs decode only new or changed pictures")
    duplicates.add_argument("--workers", type=whole_number(0), default=workers, help="processes decoding the images")
    duplicates.add_argument("--env-file", default=".env", help="settings file read for TRAINING")

    audit = commands.add_parser(
        "audit", help="rank the image-tag pairs whose labels are most likely wrong (k-fold training); any "
                      "train.py setting may follow (--arch, --weights, --image-size, ...)",
        description="Rank the image-tag pairs of a folder whose labels are most likely wrong: k models train "
                    "with train.py's recipe, each judging the images the others trained on. Any train.py setting "
                    "may follow (--arch resnet18 --weights none --image-size 160 ...); the others come from the "
                    "environment and .env, as for train.py. Writes DIR.suspects.csv and DIR.suspects.html; "
                    "changes no tag file.")
    audit.add_argument("folder", nargs="?", help="dataset folder (default: TRAINING from the environment or .env)")
    audit.add_argument("--folds", type=whole_number(2, 20), default=audit_folds, help="models trained, k")
    audit.add_argument("--epochs", type=whole_number(1), default=audit_epochs, help="epochs each fold trains")
    audit.add_argument("--method", choices=RANKERS, default=RANKERS[0],
                       help="context: the model's verdict judged with the image's other tags | cleanlab: confident "
                            "learning first, then by disagreement | confidence: by disagreement alone")
    audit.add_argument("--top", type=whole_number(1), default=audit_rows,
                       help="suspects written, most suspicious first")
    audit.add_argument("--output", help="the suspects CSV (default: DIR.suspects.csv beside the folder); the page "
                                        "goes beside it as .html")
    audit.add_argument("--from-model", help="a quick look instead: judge only the validation images of this "
                                            "train.py model, by its predictions")
    audit.add_argument("--keep-folds", action="store_true",
                       help="keep each fold's predictions (DIR.suspects.folds/), which a rerun then reuses")
    audit.add_argument("--env-file", default=".env", help="settings file read for TRAINING and train.py's settings")

    fix = commands.add_parser("fix", help="apply the fixes marked in a suspects CSV to the tag files (an undo "
                                          "file is written first)")
    fix.add_argument("folder", help="the dataset folder the audit looked at")
    fix.add_argument("--suspects", help="the CSV with rows marked in its accept column (default: DIR.suspects.csv)")
    fix.add_argument("--dry-run", action="store_true", help="only print what would change")

    undo = commands.add_parser("undo", help="put back the tag files a `fix` run changed")
    undo.add_argument("undo_file", help="the undo file `fix` named (DIR.undo-DATE-TIME.json)")

    demo = commands.add_parser("demo", help="write the generated demo dataset (DEST/train and DEST/infer)")
    demo.add_argument("destination", help="folder to write it to")
    return parser


@exit_on_user_error
def main(argv=None):
    argv = [str(arg) for arg in argv] if argv is not None else sys.argv[1:]
    parser = get_args_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "audit":  # only the audit passes flags on (to train.py's settings)
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    note_renamed_flags(argv, RENAMED_FLAGS)
    changes = {"tag": "folder", "fix": "folder", "folders": "destination"}.get(args.command)  # tag files in it
    with contextlib.ExitStack() as held:
        if changes and not args.dry_run and Path(getattr(args, changes)).is_dir():
            held.enter_context(tag_folder_lock(getattr(args, changes)))  # as infer.py does: one run at a time
        return run_command(args, rest)


def run_command(args, rest):
    if args.command == "audit":
        return audit_folder(args, rest)
    if args.command == "fix":
        return apply_fixes(args.folder, args.suspects or default_suspects_path(args.folder), dry_run=args.dry_run)
    if args.command == "undo":
        return undo_fixes(args.undo_file)
    if args.command == "tag":
        tags = parse_tags(args.add)
        if not tags:
            raise UserError('--add holds no tags: give them comma-separated, e.g. --add "cat, indoor"')
        return add_tags(args.folder, tags, recursive=args.recursive, dry_run=args.dry_run)
    if args.command == "folders":
        return convert_class_folders(args.source, args.destination, move=args.move, dry_run=args.dry_run)
    if args.command == "check":
        folder = args.folder or environment_setting("TRAINING", args.env_file)
        if not folder:
            raise UserError("no folder to check: pass it (prepare.py check DIR) or set TRAINING in .env")
        return check_folder(folder, recursive=args.recursive, min_count=args.min_tag_count, workers=args.workers)
    if args.command == "duplicates":
        return find_folder_duplicates(args)
    write_demo_dataset(args.destination)
    print(f"demo: wrote {Path(args.destination) / 'train'} (images with tags) and "
          f"{Path(args.destination) / 'infer'} (images to tag)")
    return None


if __name__ == "__main__":
    main()
