"""--freeze-backbone: the frozen backbone runs once over the images, and the epochs then train
the last layer alone on the features it produced."""

import contextlib
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from common.dataset import collate_readable, no_readable_images
from common.distributed import all_agree, gather_rows
from common.passes import readable_batches, to_device
from common.model import classifier_head_name, fold_batchnorm, set_submodule
from common.precision import autocast


@contextlib.contextmanager
def head_removed(model):
    """Temporarily make the model return its features instead of tag logits."""
    name = classifier_head_name(model)
    head = model.get_submodule(name)
    set_submodule(model, name, nn.Identity())
    try:
        yield head
    finally:
        set_submodule(model, name, head)


@torch.inference_mode()
def extract_features(model, loader, device, precision, unreadable):
    """Run the frozen backbone once over a loader; returns (features, targets, positions) on the CPU,
    positions being each row's place in the loader's list of images."""
    model.eval()
    all_features, all_targets, all_positions = [], [], []
    with head_removed(model):  # the frozen backbone never changes, so folding its BatchNorm is exact
        backbone = fold_batchnorm(model).to(memory_format=torch.channels_last)
    for batch in readable_batches(loader, device, unreadable):
        with autocast(device, precision):
            features = backbone(to_device(batch.images, device))
        all_features.append(features.float().cpu())
        all_targets.append(batch.targets)
        all_positions.append(batch.indices)
    if not all_features:
        return None, None, None
    return torch.cat(all_features), torch.cat(all_targets), torch.cat(all_positions)


class CachedFeatures(Dataset):
    """Backbone features computed once, served like images so the same training loop runs on them."""

    def __init__(self, features, targets, positions=None, source_length=None):
        self.features, self.targets = features, targets
        # where each row's image is in the list of images (unreadable ones have no row), and how
        # long that list is, so that predictions name their images (see epoch.predict)
        self.positions = torch.arange(len(features)) if positions is None else positions
        self.source_length = len(features) if source_length is None else source_length
        self.paths = []  # features are never unreadable

    def __len__(self):
        return len(self.features)

    def __getitem__(self, position):
        return self.features[position], self.targets[position], int(self.positions[position]), None


def cache_features(model, loaders, args, device, precision, unreadable, processes):
    """--freeze-backbone: run the backbone once over each loader; later epochs train the head alone.
    Under torchrun each process computes its share and every process gets all the features."""
    started = time.time()
    cached = []
    for loader in loaders:
        training = loader is loaders[0]
        features, targets, positions = (extract_features(model, loader, device, precision, unreadable) if loader
                                        else (None,) * 3)
        if training:  # every process trains on all of them, each on its own share per epoch
            features, targets = (None, None) if features is None else (features.numpy(), targets.numpy())
            features, targets = gather_rows(features), gather_rows(targets)
            features, targets = (None, None) if features is None else map(torch.from_numpy, (features, targets))
            positions = None  # the training rows are only ever shuffled
        if not all_agree(features is not None):  # validation: each process keeps its share
            cached.append(None)
            continue
        features = CachedFeatures(features, targets, positions, len(loader.dataset))
        sampler = (DistributedSampler(features, processes.world_size, processes.rank, shuffle=True, seed=args.seed)
                   if training and processes.is_distributed else None)
        cached.append(DataLoader(features, batch_size=args.batch_size, shuffle=training and sampler is None,
                                 sampler=sampler, collate_fn=collate_readable,
                                 generator=torch.Generator().manual_seed(args.seed)))
    if cached[0] is None:
        raise no_readable_images(args.data)
    print(f"features: computed once for {len(cached[0].dataset)} training images in {time.time() - started:.0f} s")
    return cached
