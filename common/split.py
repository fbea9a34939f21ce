"""The training / validation split and the audit's folds: stratified so that every tag, even a rare
one, reaches each part, repeatable from a seed, and keeping each group of related images (see
common/groups.py) on one side. The split is saved beside the model, with its groups, so that
--resume reuses it."""

import json
from pathlib import Path

import numpy as np
import scipy.sparse
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

from common.errors import UserError
from common.files import write_text_atomically

# The split file's count of validation images with a near-duplicate among the training images (while
# --group-duplicates is off): the run warns that its validation figures are optimistic.
LEAKED = "validation_images_with_a_near_duplicate_in_training"

# Iterative stratification visits every image-tag pair many times: 14 s and 1 GB for 10,000 images x
# 3,000 tags, minutes for more. Past this many pairs, split_by_rarest_tag does the job in one pass.
ITERATIVE_STRATIFICATION_LIMIT = 10_000_000


def split_train_validation(targets, validation_fraction, seed, group_of=None):
    """Seeded split of the rows of an (images x tags) 0/1 matrix (dense or sparse) into (train,
    validation) index lists, by iterative stratification (Sechidis et al. 2011): each tag's
    positives are shared out in proportion, so that even rare tags reach the validation set.
    group_of: each row's group; the rows of a group all land on one side (assign_groups)."""
    if not 0.0 <= validation_fraction < 1.0:
        raise UserError(f"--val-fraction must be at least 0 and below 1, not {validation_fraction}")
    count = targets.shape[0]
    validation_size = round(count * validation_fraction)
    if validation_fraction > 0 and count >= 2:
        validation_size = min(max(validation_size, 1), count - 1)  # a tiny set still gets one
    if validation_size == 0:
        return list(range(count)), []
    if has_groups(group_of):
        part = assign_groups(targets, group_of, [1 - validation_fraction, validation_fraction], seed)
        return np.flatnonzero(part == 0).tolist(), np.flatnonzero(part == 1).tolist()
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


def has_groups(group_of):
    """Whether any two rows share a group."""
    return group_of is not None and len(np.unique(group_of)) < len(group_of)


def assign_groups(targets, group_of, shares, seed):
    """Each row's part (0 .. len(shares) - 1) such that the rows of a group share one part, each
    part holds about its share of the rows, and each tag's rows are shared out in proportion.

    Iterative stratification (Sechidis et al. 2011) over groups instead of rows: tags are visited
    from the rarest to the most common, and each group carrying the tag, in random order, joins
    the part that it brings closest to its wanted count of every tag the group holds (a group of
    twelve pictures of one subject is twelve pictures of each of its tags); ties go to the part
    that most wants more rows. Untagged groups then fill the parts up to their sizes. A tag whose
    pictures lie in fewer groups than there are parts cannot reach every part: see
    unrepresented_tags."""
    targets = scipy.sparse.csr_matrix(targets, dtype=np.float64)
    groups, group_index = np.unique(np.asarray(group_of), return_inverse=True)
    count, group_count, part_count = targets.shape[0], len(groups), len(shares)
    membership = scipy.sparse.csr_matrix((np.ones(count), (group_index, np.arange(count))),
                                         shape=(group_count, count))
    counts = (membership @ targets).tocsr()  # group x tag: how many of the group's rows carry the tag
    sizes = np.bincount(group_index, minlength=group_count).astype(np.float64)
    shares = np.asarray(shares, dtype=np.float64) / np.sum(shares)
    wanted = shares[:, None] * np.asarray(counts.sum(0)).ravel()[None, :]  # part x tag, still wanted
    wanted_size = shares * count
    generator = np.random.default_rng(seed)
    part = np.full(group_count, -1)
    columns = counts.tocsc()
    tag_counts = np.asarray(counts.sum(0)).ravel()
    for tag in np.lexsort((generator.random(len(tag_counts)), tag_counts)):  # rarest first, ties at random
        carriers = columns.indices[columns.indptr[tag]:columns.indptr[tag + 1]]
        for group in generator.permutation(carriers[part[carriers] < 0]):
            row = slice(counts.indptr[group], counts.indptr[group + 1])
            tags, amounts = counts.indices[row], counts.data[row]
            closer = (np.abs(wanted[:, tags]) - np.abs(wanted[:, tags] - amounts)).sum(1)
            size_closer = np.abs(wanted_size) - np.abs(wanted_size - sizes[group])
            chosen = np.lexsort((generator.random(part_count), size_closer, closer))[-1]
            part[group] = chosen
            wanted[chosen, tags] -= amounts
            wanted_size[chosen] -= sizes[group]
    for group in generator.permutation(np.flatnonzero(part < 0)):  # groups without any tag
        chosen = int(np.argmax(wanted_size))
        part[group] = chosen
        wanted_size[chosen] -= sizes[group]
    for empty in sorted(set(range(part_count)) - set(part.tolist())):  # a tiny set: every part gets a group
        groups_in = np.bincount(part, minlength=part_count)
        movable = np.flatnonzero(groups_in[part] > 1)  # from parts that keep another group
        if len(movable):
            part[movable[np.argmin(sizes[movable])]] = empty
    return part[group_index]


def assign_folds(targets, folds, seed, group_of=None):
    """Each image's fold (0 .. folds-1), stratified so that every tag's images are shared out evenly
    (iterative stratification, as for the validation split; a seeded shuffle for very large sets),
    with the images of a group (group_of) in one fold."""
    count = targets.shape[0]
    units = len(np.unique(group_of)) if group_of is not None else count
    if folds < 2 or units < folds:
        raise UserError(f"--folds {folds} needs at least {max(folds, 2)} tagged images (or groups of related images) "
                        f"and 2 or more folds; the folder has {units}")
    if has_groups(group_of):
        return assign_groups(targets, group_of, [1] * folds, seed)
    fold_of = np.empty(count, dtype=np.int64)
    if count * targets.shape[1] > ITERATIVE_STRATIFICATION_LIMIT:
        fold_of[np.random.default_rng(seed).permutation(count)] = np.arange(count) % folds
        return fold_of
    dense = targets.toarray() if scipy.sparse.issparse(targets) else np.asarray(targets)
    if dense.shape[1] == 1:  # the stratifier wants two or more columns
        dense = np.hstack([dense, 1 - dense])
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(count), dense)):
        fold_of[held_out] = fold
    return fold_of


def unrepresented_tags(targets, validation, validation_fraction):
    """The tags that a split by rows would give at least one validation image but this one gives
    none (their images lie in too few groups), as [(tag column, its image count)]."""
    counts = np.asarray(targets.sum(0)).ravel()
    in_validation = np.asarray(targets[validation].sum(0)).ravel() if len(validation) else np.zeros_like(counts)
    missing = np.flatnonzero((counts * validation_fraction >= 1) & (in_validation == 0))
    return [(tag, int(counts[tag])) for tag in missing]


def split_data(args, data, resume_state, split_path, processes, related=None):
    """Stratified split that keeps each group of `related` images (a RelatedImages) on one side, or
    the interrupted run's own when resuming; saved beside the model with its groups. (Under
    torchrun each process computes the same seeded split from the same groups.) data: (image
    paths, targets, vocabulary)."""
    paths, targets, vocabulary = data
    root = Path(args.data)
    if resume_state:
        position_of = {path.relative_to(root).as_posix(): position for position, path in enumerate(paths)}
        try:
            split = [[position_of[name] for name in resume_state["split"][part]] for part in ("train", "validation")]
        except KeyError as missing:
            raise UserError(f"{args.data} lost the image {missing} since the interrupted run; start a fresh run "
                            "without --resume") from None
        names = dict(resume_state["split"])  # its groups and what it found, as it found them
    else:
        group_of = related.group_of if related is not None else None
        split = split_train_validation(targets, args.val_fraction, args.seed, group_of)
        names = {"groups": [[paths[row].relative_to(root).as_posix() for row in group] for group in related.groups]
                 if related is not None else []}
        if related is not None and related.near_pairs is not None:
            names[LEAKED] = related.leaked_count(split[1])
        if has_groups(group_of):
            describe_unrepresented_tags(targets, split[1], args.val_fraction, vocabulary)
    names |= {part: [paths[p].relative_to(root).as_posix() for p in positions]
              for part, positions in zip(("train", "validation"), split)}
    if processes.is_main:
        write_text_atomically(split_path, json.dumps({"data": str(root), "seed": args.seed, **names}, indent=1))
    print(f"split: {len(split[0])} for training, {len(split[1])} for validation (saved in {split_path})")
    leaked = names.get(LEAKED, 0)
    if leaked:
        print(optimistic_validation_warning(leaked, len(split[1])))
    return split, names


def optimistic_validation_warning(leaked, validation_count):
    return (f"warning: {leaked} of the {validation_count} validation images have a near-duplicate among the training "
            "images, so the validation figures are optimistic (the model has seen those pictures). "
            "--group-duplicates on keeps near-duplicates on one side of the split")


def describe_unrepresented_tags(targets, validation, validation_fraction, vocabulary, limit=10):
    """Name the tags that grouping kept out of validation (their thresholds then follow the shared one)."""
    missing = unrepresented_tags(targets, validation, validation_fraction)
    if missing:
        named = ", ".join(f"{vocabulary[tag]} ({count} images)" for tag, count in missing[:limit])
        print(f"note: {len(missing)} tag(s) have no validation image although {validation_fraction:.0%} of their "
              f"images would be one or more, because those images lie in too few groups of related images: {named}"
              f"{f' and {len(missing) - limit} more' if len(missing) > limit else ''}. They are still learned; "
              "their thresholds follow the one shared by all tags")
