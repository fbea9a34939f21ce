"""The training / validation split: seeded, disjoint, complete and stratified, for small and very large sets."""


import numpy as np

from common.folder_scan import tag_matrix
from common.split import split_by_rarest_tag, split_train_validation


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
