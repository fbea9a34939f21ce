"""Shared pieces of multitag-trainer: everything that more than one script or notebook uses.

Each concept lives in exactly one module:

    settings      flags, environment variables and .env, in that order of precedence
    tagfiles      the sidecar tag-file format: naming, reading any encoding, writing and merging
    folder_scan   pairing a folder's images with tag files, the tag index, vocabulary and tag matrix
    duplicates    near-duplicate pictures: fingerprints, their cache, pairs and groups
    groups        related images that stay on one side of a split: near-duplicates, --group-by, --groups
    split         the stratified training / validation split and the audit's folds, groups kept whole
    dataset       the PyTorch dataset and the batches that leave unreadable images out
    images        opening an image file as RGB, and the train / eval transforms
    image_cache   training images decoded once and kept in memory
    loaders       a run's training and validation DataLoaders
    feature_cache --freeze-backbone's backbone features, computed once
    model         building a torchvision backbone with a multi-label head (small-input layouts,
                  BatchNorm folding)
    checkpoint    the self-describing model file and the tag-list file
    losses        Asymmetric Loss and BCE
    optimizer     AdamW's parameter groups and the warm-up + cosine schedule
    epoch         one training epoch and one prediction pass
    training_loop a whole run: epochs, the best epoch, Ctrl-C and --resume, calibration, reports
    precision     fp32 / bf16 / fp16 per device, and autocast
    inference     the Tagger that runs a checkpoint fast over a folder, and tag choice
    export        converting a model file (--save-as) and ONNX export
    device        picking CUDA, then MPS, then the CPU
    distributed   running as several processes under torchrun (DistributedDataParallel)
    metrics       mAP, F1 and confusion counts for multi-label predictions
    reports       CSV tables and plots
    files         atomic writes, so that an interrupted run never leaves half a file
    idle_threads  imported before torch by infer.py alone: OpenMP threads sleep while waiting
    demo          the generated coloured-shapes dataset behind `train.py --demo`
    errors        the one exception type whose message is shown without a traceback
"""

import builtins
import os
import sys

from common.errors import quiet_keyboard_interrupt, quiet_start

# A Ctrl-C while torch is still loading ends with one line, not a traceback. (Jupyter shows cell
# errors itself, so notebooks are unaffected.) Scripts import `common` first for this reason too.
sys.excepthook = quiet_keyboard_interrupt
quiet_start(getattr(sys.modules.get("__main__"), "__file__", None))

# Under torchrun every process runs the whole script. Only the first (RANK 0) prints and shows
# progress bars, so the terminal reads as for one process; the others still report errors and
# their own unreadable images (on stderr or through tqdm.write). tqdm reads TQDM_DISABLE when
# it is imported, hence here.
if int(os.environ.get("RANK", "0")) > 0:
    os.environ.setdefault("TQDM_DISABLE", "1")
    _print = builtins.print

    def _print_errors_only(*values, file=None, **options):
        if file is sys.stderr:
            _print(*values, file=file, **options)

    builtins.print = _print_errors_only
