"""The training and validation DataLoaders of a run: decoded from the folder each epoch, or once
into memory when the images fit in --cache-mb; under torchrun each process loads its share."""

import torch
from torch.utils.data import DataLoader, DistributedSampler

from common.dataset import ImageTagDataset, collate_readable
from common.distributed import contiguous_shard
from common.image_cache import cache_size_mb, decode_into_memory
from common.transforms import decode_transform, kept_pixels_transform, train_transform
from common.jpeg_decode import EncodedJpegs, resolve_decode


def augments(args):
    """The run's augmentation: "on" (crops, flips and colour), "flip" (mirroring alone) or "off".
    Only when asked: in runs of 10 epochs crops and colour cost quality from scratch and when
    fine-tuning alike (bench/README.md). Cached features are computed once, so never augmented."""
    return "off" if args.freeze_backbone else args.augment


def keeps_images_in_memory(args, image_count, processes, for_training):
    """Decode once and keep the pixels when they fit in --cache-mb (not under torchrun, where each
    process would keep a copy, nor for --freeze-backbone, which reads each image once anyway)."""
    return (for_training and not processes.is_distributed
            and cache_size_mb(image_count, args.image_size) <= args.cache_mb)


def make_loaders(args, paths, targets, split, device, augmentation, processes, for_training=True, decoded=None,
                 with_refit=False):
    """Training and validation loaders, and with_refit a third over both parts (for the last
    epochs, when the held-out images train too; None without validation images). for_training=False
    reads the training images once, in order (to compute features from them). Under torchrun
    each process loads its own share: a fresh random share of the training images each epoch
    (DistributedSampler), and a fixed consecutive share of the validation images, whose
    predictions are then gathered. decoded: every image of `paths` already decoded at the run's
    size (a DecodedImages), to take the pixels from."""
    in_memory = decoded is not None or keeps_images_in_memory(args, len(split[0]) + len(split[1]), processes,
                                                               for_training)
    decode = resolve_decode(getattr(args, "decode", "cpu"), device)
    with_refit = with_refit and bool(split[1]) and for_training
    both = list(split[0]) + list(split[1])
    whole = None  # both parts decoded at once, training images first, when they are kept in memory
    if in_memory and decoded is None:
        dataset = ImageTagDataset([paths[p] for p in both], decode_transform(args.image_size), targets[both],
                                  decode_size=args.image_size)
        whole = decode_into_memory(dataset, args.image_size, kept_pixels_transform(args.image_size, False),
                                   args.workers)

    def images(positions, augmentation, start=0):
        changed = augmentation == "on"  # crops and colour, a picture at a time
        if whole is not None:  # a view of the kept pixels: the parts share them
            kept = whole.rows(start, start + len(positions), kept_pixels_transform(args.image_size, changed))
        elif decoded is not None:
            kept = decoded.subset(positions, kept_pixels_transform(args.image_size, changed))
        else:
            chosen = [paths[p] for p in positions]
            if changed:  # flips too, in the same transform
                return ImageTagDataset(chosen, train_transform(args.image_size), targets[positions],
                                       decode_size=args.image_size)  # JPEGs decode small
            if decode == "gpu":  # JPEGs decoded in batches on the GPU
                kept = EncodedJpegs(chosen, args.image_size, targets[positions])
            else:
                kept = ImageTagDataset(chosen, decode_transform(args.image_size), targets[positions],
                                       decode_size=args.image_size)
        kept.flip_on_device = augmentation != "off"  # train_one_epoch mirrors the batch there (random_flips)
        return kept

    def loader(dataset, augmentation, **options):
        # Kept pixels that need only normalising (and perhaps mirroring, on the device) are cheaper
        # to prepare here than to receive from workers
        workers = args.workers if augmentation == "on" or not in_memory else 0
        return DataLoader(dataset, batch_size=args.batch_size, num_workers=workers, collate_fn=collate_readable,
                          pin_memory=device.type == "cuda", persistent_workers=workers > 0, **options)

    def shuffled(dataset):
        if processes.is_distributed:
            sampler = DistributedSampler(dataset, processes.world_size, processes.rank, shuffle=True, seed=args.seed)
            return loader(dataset, augmentation, sampler=sampler)
        return loader(dataset, augmentation, shuffle=True, generator=torch.Generator().manual_seed(args.seed))

    # No drop_last: every image is decoded every epoch, so each unreadable one is named in the
    # first. train_one_epoch leaves out the last, partial batch itself (see full_batches).
    if not for_training:
        train_loader = loader(images(contiguous_shard(split[0], processes), augmentation), augmentation)
    else:
        train_loader = shuffled(images(split[0], augmentation))
    validation_loader = None
    if split[1]:
        validation = contiguous_shard(split[1], processes)
        # (kept in memory only outside torchrun, where the shard is the whole validation part)
        validation_loader = loader(images(validation, "off", start=len(split[0])), "off")
    refit_loader = shuffled(images(both, augmentation)) if with_refit else None
    if in_memory:
        kept_mb = cache_size_mb(len(split[0]) + len(split[1]), args.image_size)
        print(f"images: decoded once and kept in memory ({kept_mb:.0f} MB of --cache-mb {args.cache_mb}); later "
              "epochs decode nothing")
    return train_loader, validation_loader, refit_loader
