"""The label audit's predictions: every image judged by models that never saw its labels.

The folder is cut into k folds (common/split.py's assign_folds), a model is trained on all folds
but one with train.py's recipe and predicts the fold it did not see (out-of-fold probabilities).
Or, for a quick look, a trained model predicts the images it held out. common/suspects.py then
ranks the image-tag pairs: a tag the image lacks but the model sees ("missing"), or one it carries
that the model does not see ("extra"). By default each probability is first judged again together
with the image's other labels (`context`); cleanlab's confident learning (`cleanlab`) and the
model's disagreement alone (`confidence`) are the other rankings.
"""

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from common.checkpoint import load_checkpoint
from common.dataset import ImageTagDataset, UnreadableImages
from common.passes import predict
from common.errors import UserError
from common.files import atomic_write
from common.folder_scan import multi_hot
from common.image_cache import decode_into_memory
from common.inference import Tagger
from common.loaders import keeps_images_in_memory
from common.split import assign_folds
from common.tagfiles import find_tag_file, read_tag_file
from common.training_loop import build_training_run, format_epoch_line, run_epoch, settings_of
from common.transforms import decode_transform


# ----------------------------------------------------------------------------- folds
def fingerprint(*parts):
    """A short hash of what a fold's predictions depend on, so that a rerun reuses only matching ones."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def out_of_fold_probabilities(args, data, folds, work_folder, runtime, small_input, group_of=None):
    """Train `folds` models with the run settings in `args` on `runtime` (a Runtime), each on every
    fold but one, for args.epochs epochs (no early stopping: the fold it predicts must not choose its epoch), and
    return (image names, targets, each image's probabilities from the model that did not see it (NaN
    rows for unreadable images), each image's fold). The images of a group (group_of: each image's
    group, see common/groups.py) share a fold, so that no model judges a copy of a picture it
    learned. Each finished fold is kept in `work_folder` (its rows and their probabilities), so an
    interrupted audit resumes."""
    paths, targets, vocabulary = data
    root = Path(args.data)
    names = [path.relative_to(root).as_posix() for path in paths]
    fold_of = assign_folds(targets, folds, args.seed, group_of)
    recipe = {key: value for key, value in settings_of(args).items()
              if key not in ("device", "workers", "cache_mb", "index_cache", "env_file", "process_count")}
    dense_targets = targets.toarray() if scipy.sparse.issparse(targets) else np.asarray(targets)
    labels = hashlib.sha256(np.packbits(dense_targets.astype(bool)).tobytes()).hexdigest()
    key = fingerprint(recipe, names, vocabulary, labels, fold_of.tolist(), folds)
    probabilities = np.full(dense_targets.shape, np.nan, dtype=np.float32)
    started = time.perf_counter()
    decoded = None  # every fold takes its pixels from one decoding of the folder, when they fit in memory

    def decode_once():
        nonlocal decoded
        if decoded is None and keeps_images_in_memory(args, len(paths), runtime.processes, not args.freeze_backbone):
            every_image = ImageTagDataset(paths, decode_transform(args.image_size), targets,
                                          decode_size=args.image_size)
            decoded = decode_into_memory(every_image, args.image_size, None, args.workers)
        return decoded

    for fold in range(folds):
        held_out = np.flatnonzero(fold_of == fold)
        saved = Path(work_folder) / f"fold-{fold + 1}-of-{folds}.npz"
        if saved.exists():
            with np.load(saved) as kept:
                if str(kept["key"]) == key:
                    probabilities[held_out] = kept["probabilities"]
                    print(f"fold {fold + 1}/{folds}: reusing {saved} from an earlier run")
                    continue
        training = np.flatnonzero(fold_of != fold)
        print(f"fold {fold + 1}/{folds}: training on {len(training)} images, predicting {len(held_out)}")
        fold_images = decode_once()  # before seeding: a DataLoader draws from the random generator
        torch.manual_seed(args.seed + fold)  # each fold the same, whether or not the folds before it ran
        split_names = {"train": [names[p] for p in training], "validation": [names[p] for p in held_out]}
        run = build_training_run(args, data, (training.tolist(), held_out.tolist()), split_names, small_input,
                                 runtime, decoded=fold_images)
        held_out_loader, run.validation_loader = run.validation_loader, None  # never seen, never used to choose
        for epoch in range(1, args.epochs + 1):
            epoch_started = time.time()
            row = run_epoch(run, epoch)
            row |= {"seconds": time.time() - epoch_started, "saved": False}
            print(f"fold {fold + 1}/{folds} " + format_epoch_line(row, args.epochs))
        _, _, fold_probabilities, positions = predict(run.trainable, held_out_loader, runtime.device,
                                                      runtime.precision, run.unreadable)
        rows = np.full((len(held_out), len(vocabulary)), np.nan, dtype=np.float32)
        if positions is not None:
            rows[positions] = fold_probabilities
        probabilities[held_out] = rows
        if runtime.processes.is_main:
            with atomic_write(saved, "wb") as file:
                np.savez(file, key=np.array(key), rows=held_out, probabilities=rows)
    print(f"audit: {folds} folds trained and predicted in {time.perf_counter() - started:.0f} s")
    return names, dense_targets, probabilities, fold_of


def held_out_predictions(model_path, folder, device, precision, batch_size, workers):
    """A quick look instead of training folds: the probabilities a trained model gives the images it
    held out for validation (listed in NAME.split.json beside it), and their labels as the sidecars
    hold them now. Returns (folder, names, targets, probabilities, tags)."""
    model_path = Path(model_path)
    split_path = model_path.with_name(f"{model_path.stem}.split.json")
    if not split_path.is_file():
        raise UserError(f"{split_path} is missing: --from-model needs the split train.py writes beside the model, to "
                        "know which images the model never trained on. Without it, run the audit without --from-model")
    split = json.loads(split_path.read_text(encoding="utf-8"))
    folder = Path(folder or split["data"])
    names = [name for name in split.get("validation", []) if (folder / name).is_file()]
    if not names:
        raise UserError(f"none of the validation images listed in {split_path} is in {folder}: the model held none out "
                        "(--val-fraction 0), or the folder is not the one it was trained on")
    checkpoint = load_checkpoint(model_path)
    if "validated_epoch" in checkpoint.get("metrics", {}):
        raise UserError(f"{model_path} trained on its validation images too, in its last epochs (train.py "
                        "--refit-epochs), so it cannot judge them: run the audit without --from-model, or train "
                        "the model to judge with --refit-epochs 0")
    tags = checkpoint["tags"]
    images = [folder / name for name in names]
    truth = [read_tag_file(tag_file) if (tag_file := find_tag_file(image)) else [] for image in images]
    probabilities = np.full((len(images), len(tags)), np.nan, dtype=np.float32)
    for positions, rows in Tagger(checkpoint, device, precision).run(images, batch_size, workers, UnreadableImages(),
                                                                     "predicting"):
        probabilities[positions] = rows
    return folder, names, multi_hot(truth, tags), probabilities, tags
