"""The training / validation split and the audit's folds: seeded, disjoint, complete and stratified, for
small and very large sets, with each group of related images on one side."""


import numpy as np
import pytest

from common.errors import UserError
from common.folder_scan import tag_matrix
from common.split import assign_folds, split_by_rarest_tag, split_train_validation, unrepresented_tags


def test_split_is_seeded_disjoint_and_complete():
    targets = (np.random.default_rng(0).random((50, 4)) < 0.3).astype(int)
    train, validation = split_train_validation(targets, 0.2, seed=3)
    assert (train, validation) == split_train_validation(targets, 0.2, seed=3)
    assert split_train_validation(targets, 0.2, seed=4) != (train, validation)
    assert len(validation) == 10 and sorted(train + validation) == list(range(50))
    assert len(split_train_validation(targets[:3], 0.1, seed=0)[1]) == 1  # a tiny set still gets one
    assert split_train_validation(targets, 0.0, seed=0) == (list(range(50)), [])
    assert len(split_train_validation(targets[:, :1], 0.2, seed=0)[1]) == 10  # a single tag works too


def test_split_sends_rare_tags_to_validation_in_proportion():
    targets = np.zeros((100, 3), dtype=int)
    targets[:50, 0] = 1
    targets[::20, 1] = 1  # a rare tag: 5 images
    targets[::25, 2] = 1  # rarer still: 4 images
    for seed in range(5):
        _, validation = split_train_validation(targets, 0.2, seed=seed)
        assert targets[validation].sum(0).tolist() == [10, 1, 1]


def random_tagging(images, tags, seed):
    """An (images x tags) sparse 0/1 matrix with a long tail of rare tags, as on booru sites."""
    generator = np.random.default_rng(seed)
    weights = 1 / np.arange(1, tags + 1) ** 1.1
    rows = [generator.choice(tags, size=generator.integers(0, 6), replace=False, p=weights / weights.sum())
            for _ in range(images)]
    return tag_matrix([[str(tag) for tag in row] for row in rows], [str(tag) for tag in range(tags)])


def test_large_set_split_is_seeded_complete_and_shares_out_every_tag():
    targets = random_tagging(4000, 300, seed=0)
    train, validation = split_by_rarest_tag(targets, 400, seed=1)
    assert (train, validation) == split_by_rarest_tag(targets, 400, seed=1)
    assert len(validation) == 400 and sorted(train + validation) == list(range(4000))
    counts = np.asarray(targets.sum(0)).ravel()
    in_validation = np.asarray(targets[validation].sum(0)).ravel()
    generator = np.random.default_rng(1)
    random_split = generator.permutation(4000)[:400]
    in_random = np.asarray(targets[random_split].sum(0)).ravel()
    frequent_enough = counts >= 10  # tags that 10 % should reach at least once
    assert (in_validation[frequent_enough] >= 1).all()
    # much closer to each tag's 10 % share than a random split gets
    assert np.abs(in_validation - counts / 10).sum() < 0.5 * np.abs(in_random - counts / 10).sum()


def test_split_switches_to_the_one_pass_method_for_very_large_sets(monkeypatch):
    import common.split

    targets = random_tagging(500, 40, seed=2)
    monkeypatch.setattr(common.split, "ITERATIVE_STRATIFICATION_LIMIT", 500 * 40 - 1)
    assert split_train_validation(targets, 0.1, seed=3) == split_by_rarest_tag(targets, 50, seed=3)


def test_folds_share_out_every_tag_and_are_repeatable():
    rng = np.random.default_rng(1)
    targets = (rng.random((200, 5)) < [0.5, 0.3, 0.1, 0.05, 0.02]).astype(np.float32)
    fold_of = assign_folds(targets, 4, seed=3)
    assert sorted(set(fold_of.tolist())) == [0, 1, 2, 3]
    assert np.array_equal(fold_of, assign_folds(targets, 4, seed=3))
    assert not np.array_equal(fold_of, assign_folds(targets, 4, seed=4))
    for tag in range(5):
        per_fold = [targets[fold_of == fold, tag].sum() for fold in range(4)]
        assert max(per_fold) - min(per_fold) <= 1, (tag, per_fold)  # stratified: each fold its share


def test_folds_need_enough_images():
    with pytest.raises(UserError, match="--folds 4 needs at least 4 tagged images"):
        assign_folds(np.ones((3, 2)), 4, seed=0)


def grouped_tagging(seed, images=600, tags=40):
    """A long-tailed tagging where images come in groups of 1 to 12 renditions sharing their tags."""
    generator = np.random.default_rng(seed)
    sizes = generator.choice([1, 1, 1, 2, 3, 6, 12], size=images)
    group_of = np.repeat(np.arange(images), sizes)[:images]
    group_tags = random_tagging(images, tags, seed).toarray()
    return tag_matrix([[str(tag) for tag in np.flatnonzero(group_tags[group])] for group in group_of],
                      [str(tag) for tag in range(tags)]), group_of


def test_each_group_lands_on_one_side_and_every_tag_keeps_its_share_as_far_as_groups_allow():
    targets, group_of = grouped_tagging(seed=0)
    train, validation = split_train_validation(targets, 0.1, seed=2, group_of=group_of)
    assert (train, validation) == split_train_validation(targets, 0.1, seed=2, group_of=group_of)
    assert sorted(train + validation) == list(range(600))
    assert not set(group_of[train]) & set(group_of[validation])
    assert 50 <= len(validation) <= 70
    counts = np.asarray(targets.sum(0)).ravel()
    in_validation = np.asarray(targets[validation].sum(0)).ravel()
    # against whole groups drawn at random until a tenth of the images is reached
    generator, random_errors = np.random.default_rng(1), []
    for _ in range(20):
        chosen, taken = [], 0
        for group in generator.permutation(np.unique(group_of)):
            if taken >= 60:
                break
            members = np.flatnonzero(group_of == group)
            chosen += members.tolist()
            taken += len(members)
        random_errors.append(np.abs(np.asarray(targets[chosen].sum(0)).ravel() - counts / 10).sum())
    assert np.abs(in_validation - counts / 10).sum() < 0.6 * np.mean(random_errors)


def test_without_groups_of_two_or_more_the_split_is_the_one_by_images():
    targets, _ = grouped_tagging(seed=3)
    assert split_train_validation(targets, 0.1, seed=0, group_of=np.arange(600)) == \
        split_train_validation(targets, 0.1, seed=0)


def test_a_tag_whose_images_form_one_group_is_named_as_missing_from_validation():
    targets = np.zeros((100, 2), dtype=int)
    targets[:50, 0] = 1
    targets[80:, 1] = 1  # 20 images, one subject: the group can only go to one side
    group_of = np.arange(100)
    group_of[80:] = 80
    _, validation = split_train_validation(targets, 0.1, seed=0, group_of=group_of)
    assert not set(validation) & set(range(80, 100))  # the big group trains: it holds the tag's every image
    assert unrepresented_tags(targets, validation, 0.1) == [(1, 20)]


def test_folds_keep_each_group_in_one_fold_and_share_out_the_tags():
    targets, group_of = grouped_tagging(seed=4)
    fold_of = assign_folds(targets, 4, seed=1, group_of=group_of)
    assert all(len(set(fold_of[group_of == group])) == 1 for group in np.unique(group_of))
    sizes = np.bincount(fold_of, minlength=4)
    assert sizes.min() >= 0.8 * 150 and sizes.max() <= 1.2 * 150, sizes
    with pytest.raises(UserError, match="needs at least 4 tagged images"):
        assign_folds(np.ones((6, 2)), 4, seed=0, group_of=np.array([0, 0, 0, 1, 1, 2]))
