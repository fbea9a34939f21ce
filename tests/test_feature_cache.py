"""--freeze-backbone's feature cache: the backbone's features, computed once with BatchNorm folded."""


import torch
from torch import nn

from common.feature_cache import extract_features, head_removed
from common.model import build_model


def test_features_come_from_the_layer_below_the_head(shapes_dataset):
    from torch.utils.data import DataLoader

    from common.dataset import ImageTagDataset, UnreadableImages, collate_readable
    from common.folder_scan import scan_folder
    from common.transforms import eval_transform

    root, _ = shapes_dataset
    images = scan_folder(root / "train").images[:5]
    loader = DataLoader(ImageTagDataset(images, eval_transform(32), torch.zeros(5, 3)), batch_size=2,
                        collate_fn=collate_readable)
    model = build_model("resnet18", 3, "none")
    features, targets, positions = extract_features(model, loader, torch.device("cpu"), "fp32", UnreadableImages())
    assert features.shape == (5, 512) and targets.shape == (5, 3)
    assert isinstance(model.fc, nn.Linear)  # the head is back in place afterwards
    with torch.no_grad(), head_removed(model):  # BatchNorm folded for speed: the same features
        unfolded = torch.cat([model.eval()(batch.images) for batch in loader])
    assert torch.allclose(features, unfolded, atol=1e-4) and not torch.equal(features, torch.zeros_like(features))
