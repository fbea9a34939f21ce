"""One pass over a loader: the training steps (full batches only) and the prediction pass."""

import math

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from common.dataset import UnreadableImages, collate_readable
from common.distributed import Runtime
from common.passes import full_batches, predict, train_one_epoch
from common.feature_cache import CachedFeatures
from common.optimizer import Optimization, make_optimizer, make_scheduler

CPU = torch.device("cpu")


def separable_features(count=40, seed=0):
    """Features whose first two numbers decide the two tags: a problem a linear layer can learn."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(count, 6, generator=generator)
    targets = (features[:, :2] > 0).float()
    return CachedFeatures(features, targets)


def loader(dataset, batch_size=8, shuffle=False):
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_readable,
                      generator=torch.Generator().manual_seed(0))


def test_full_batches_leave_out_a_last_partial_batch_unless_there_is_nothing_else():
    assert full_batches(loader(separable_features(40), 8)) == 5
    assert full_batches(loader(separable_features(43), 8)) == 5
    assert full_batches(loader(separable_features(5), 8)) == 1


def test_an_epoch_takes_one_step_per_full_batch_and_lowers_the_loss():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    data = loader(separable_features(43), 8, shuffle=True)
    optimizer = make_optimizer(model, 0.1, 0.0)
    scheduler = make_scheduler(optimizer, total_steps=20 * 5, warmup_fraction=0.05)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = []
    for epoch in range(20):
        loss, seen = train_one_epoch(model, data, Optimization(nn.BCEWithLogitsLoss(), optimizer, scheduler, scaler),
                                     Runtime(CPU, "fp32"), UnreadableImages(), f"epoch {epoch}")
        assert seen == 40  # five full batches of 8; the last 3 images wait for the next shuffle
        losses.append(loss)
    assert scheduler.last_epoch == 20 * 5
    assert losses[-1] < 0.5 * losses[0]


def test_prediction_returns_every_images_targets_and_probabilities_in_order():
    model = nn.Linear(6, 2).eval()
    dataset = separable_features(13)
    loss, targets, probabilities, positions = predict(model, loader(dataset, 4), CPU, "fp32", UnreadableImages(),
                                                      nn.BCEWithLogitsLoss())
    assert np.array_equal(targets, dataset.targets.numpy()) and positions.tolist() == list(range(13))
    with torch.no_grad():
        expected = torch.sigmoid(model(dataset.features)).numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    direct = nn.functional.binary_cross_entropy_with_logits(model(dataset.features), dataset.targets).item()
    assert math.isclose(loss, direct, rel_tol=1e-5)
    no_loss, *_ = predict(model, loader(dataset, 4), CPU, "fp32", UnreadableImages())
    assert math.isnan(no_loss)


def test_prediction_names_each_rows_image_when_some_cannot_be_read(shapes_dataset):
    from common.dataset import ImageTagDataset
    from common.folder_scan import scan_folder
    from common.transforms import decode_transform

    root, _ = shapes_dataset
    images = scan_folder(root / "train").images[:5]
    (root / "train" / "broken.png").write_bytes(b"not a picture")
    images.insert(2, root / "train" / "broken.png")
    dataset = ImageTagDataset(images, decode_transform(32), torch.zeros(6, 2), decode_size=32)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    _, targets, probabilities, positions = predict(model, loader(dataset, 4), CPU, "fp32", UnreadableImages())
    assert positions.tolist() == [0, 1, 3, 4, 5] and len(probabilities) == len(targets) == 5
