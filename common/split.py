"""The training / validation split: stratified so that every tag, even a rare one, reaches both
parts, repeatable from a seed, and saved beside the model so that --resume reuses it."""

import json
from pathlib import Path

import numpy as np
import scipy.sparse
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from common.errors import UserError
from common.files import write_text_atomically

# Iterative stratification visits every image-tag pair many times: 14 s and 1 GB for 10,000 images x
# 3,000 tags, minutes for more. Past this many pairs, split_by_rarest_tag does the job in one pass.
ITERATIVE_STRATIFICATION_LIMIT = 10_000_000


def split_train_validation(targets, validation_fraction, seed):
    """Seeded split of the rows of an (images x tags) 0/1 matrix (dense or sparse) into (train,
    validation) index lists, by iterative stratification (Sechidis et al. 2011): each tag's
    positives are shared out in proportion, so that even rare tags reach the validation set."""
    if not 0.0 <= validation_fraction < 1.0:
        raise UserError(f"--val-fraction must be at least 0 and below 1, not {validation_fraction}")
    count = targets.shape[0]
    validation_size = round(count * validation_fraction)
    if validation_fraction > 0 and count >= 2:
        validation_size = min(max(validation_size, 1), count - 1)  # a tiny set still gets one
    if validation_size == 0:
        return list(range(count)), []
    if count * targets.shape[1] > ITERATIVE_STRATIFICATION_LIMIT:
        return split_by_rarest_tag(scipy.sparse.csr_matrix(targets), validation_size, seed)
    targets = targets.toarray() if scipy.sparse.issparse(targets) else np.asarray(targets)
    if targets.shape[1] == 1:  # the stratifier wants two or more columns; "not the tag" is as good as any
        targets = np.hstack([targets, 1 - targets])
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=validation_size, random_state=seed)
    train, validation = next(splitter.split(np.zeros(count), targets))
    return sorted(train.tolist()), sorted(validation.tolist())


def split_by_rarest_tag(targets, validation_size, seed):
    """A stratified split for very large sets: iterative stratification's greedy idea, in one pass
    over a sparse (images x tags) matrix.

    Tags are visited from the rarest to the most common. Each sends its share of its images to
    validation (counting the ones a rarer tag already sent; a fractional share is rounded up or
    down at random, in proportion), chosen at random among its images not yet placed, and its
    other unplaced images to training. Untagged images then make up the exact validation size.
    """
    count = targets.shape[0]
    share = validation_size / count
    columns = scipy.sparse.csc_matrix(targets)
    generator = np.random.default_rng(seed)
    placement = np.zeros(count, dtype=np.int8)  # 0: not yet placed, 1: validation, -1: training
    for tag in np.argsort(np.diff(columns.indptr), kind="stable"):
        images = columns.indices[columns.indptr[tag]:columns.indptr[tag + 1]]
        unplaced = generator.permutation(images[placement[images] == 0])
        wanted = share * len(images)
        wanted = int(wanted) + (generator.random() < wanted % 1)
        taken = int(np.clip(wanted - np.count_nonzero(placement[images] == 1), 0, len(unplaced)))
        placement[unplaced[:taken]], placement[unplaced[taken:]] = 1, -1
    missing = validation_size - np.count_nonzero(placement == 1)
    if missing > 0:  # untagged images first, then any training image
        candidates = np.concatenate([generator.permutation(np.flatnonzero(placement == 0)),
                                     generator.permutation(np.flatnonzero(placement == -1))])
        placement[candidates[:missing]] = 1
    elif missing < 0:
        placement[generator.choice(np.flatnonzero(placement == 1), -missing, replace=False)] = -1
    return np.flatnonzero(placement != 1).tolist(), np.flatnonzero(placement == 1).tolist()


def split_data(args, paths, targets, resume_state, split_path, processes):
    """Stratified split, or the interrupted run's own when resuming; saved beside the model.
    (Under torchrun each process computes the same seeded split.)"""
    root = Path(args.data)
    if resume_state:
        position_of = {path.relative_to(root).as_posix(): position for position, path in enumerate(paths)}
        try:
            split = [[position_of[name] for name in resume_state["split"][part]] for part in ("train", "validation")]
        except KeyError as missing:
            raise UserError(f"{args.data} lost the image {missing} since the interrupted run; start a fresh run "
                            "without --resume") from None
    else:
        split = split_train_validation(targets, args.val_fraction, args.seed)
    names = {part: [paths[p].relative_to(root).as_posix() for p in positions]
             for part, positions in zip(("train", "validation"), split)}
    if processes.is_main:
        write_text_atomically(split_path, json.dumps({"data": str(root), "seed": args.seed, **names}, indent=1))
    print(f"split: {len(split[0])} for training, {len(split[1])} for validation (saved in {split_path})")
    return split, names
