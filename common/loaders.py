"""The training and validation DataLoaders of a run: decoded from the folder each epoch, or once
into memory when the images fit in --cache-mb; under torchrun each process loads its share."""

import torch
from torch.utils.data import DataLoader, DistributedSampler

from common.dataset import ImageTagDataset, collate_readable
from common.distributed import contiguous_shard
from common.image_cache import cache_size_mb, decode_into_memory
from common.images import decode_transform, kept_pixels_transform, train_transform
from common.jpeg_decode import EncodedJpegs, resolve_decode


def augments(args):
    """Only when asked: in runs of 10 epochs it cost quality from scratch and when fine-tuning alike
    (bench/README.md). Cached features are computed once, so never augmented."""
    return args.augment == "on" and not args.freeze_backbone


def keeps_images_in_memory(args, image_count, processes, for_training):
    """Decode once and keep the pixels when they fit in --cache-mb (not under torchrun, where each
    process would keep a copy, nor for --freeze-backbone, which reads each image once anyway)."""
    return (for_training and not processes.is_distributed
            and cache_size_mb(image_count, args.image_size) <= args.cache_mb)


def make_loaders(args, paths, targets, split, device, augment, processes, for_training=True, decoded=None):
    """Training and validation loaders; for_training=False reads the training images once, in order
    (to compute features from them). Under torchrun each process loads its own share: a fresh
    random share of the training images each epoch (DistributedSampler), and a fixed consecutive
    share of the validation images, whose predictions are then gathered. decoded: every image of
    `paths` already decoded at the run's size (a DecodedImages), to take the pixels from."""
    in_memory = decoded is not None or keeps_images_in_memory(args, len(split[0]) + len(split[1]), processes,
                                                               for_training)
    decode = resolve_decode(getattr(args, "decode", "cpu"), device)

    def images(positions, augmented):
        if decoded is not None:
            kept = decoded.subset(positions, kept_pixels_transform(args.image_size, augmented))
            kept.flip_on_device = augmented
            return kept
        chosen = [paths[p] for p in positions]
        if decode == "gpu" and not augmented and not in_memory:  # JPEGs decoded in batches on the GPU
            return EncodedJpegs(chosen, args.image_size, targets[positions])
        dataset = ImageTagDataset(chosen, (train_transform if augmented else decode_transform)(args.image_size),
                                  targets[positions], decode_size=args.image_size)  # JPEGs decode small
        if not in_memory:
            return dataset
        kept = decode_into_memory(dataset, args.image_size, kept_pixels_transform(args.image_size, augmented),
                                  args.workers)
        kept.flip_on_device = augmented  # train_one_epoch mirrors the batch there (random_flips)
        return kept

    def loader(dataset, augmented, **options):
        # Kept pixels that need only normalising are cheaper to prepare here than to receive from workers
        workers = args.workers if augmented or not in_memory else 0
        return DataLoader(dataset, batch_size=args.batch_size, num_workers=workers, collate_fn=collate_readable,
                          pin_memory=device.type == "cuda", persistent_workers=workers > 0, **options)

    # No drop_last: every image is decoded every epoch, so each unreadable one is named in the
    # first. train_one_epoch leaves out the last, partial batch itself (see full_batches).
    if not for_training:
        train_loader = loader(images(contiguous_shard(split[0], processes), augment), augment)
    elif processes.is_distributed:
        train_set = images(split[0], augment)
        sampler = DistributedSampler(train_set, processes.world_size, processes.rank, shuffle=True, seed=args.seed)
        train_loader = loader(train_set, augment, sampler=sampler)
    else:
        train_loader = loader(images(split[0], augment), augment, shuffle=True,
                              generator=torch.Generator().manual_seed(args.seed))
    validation = contiguous_shard(split[1], processes)
    validation_loader = loader(images(validation, False), False) if split[1] else None
    if in_memory:
        kept_mb = cache_size_mb(len(split[0]) + len(split[1]), args.image_size)
        print(f"images: decoded once and kept in memory ({kept_mb:.0f} MB of --cache-mb {args.cache_mb}); later "
              "epochs decode nothing")
    return train_loader, validation_loader
