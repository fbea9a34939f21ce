"""Shared pieces of multitag-trainer: everything that more than one script or notebook uses.

Each concept lives in one module. The modules form layers, and a module imports only from its own
layer or the ones above it in this list, never from a later one, so there are no import cycles.
The core and data layers load no torch (the CHOICES, the folder scan, tag files and pictures),
which lets --help, a settings check and prepare.py's text commands answer at once.

core: settings and files, torch-free
    errors        the one exception type whose message is shown without a traceback
    choices       the values each setting may take, and defaults more than one script shows
    settings      flags, environment variables and .env, in that order of precedence
    files         atomic writes, so that an interrupted run never leaves half a file
    tagfiles      the sidecar tag-file format: naming, reading any encoding, writing and merging
    progress      progress bars where a person watches, plain lines in logs
    idle_threads  imported before torch by infer.py alone: OpenMP threads sleep while waiting
data: a folder's pictures and tags, torch-free
    images        which files are pictures, opening them as RGB, why one cannot be read
    folder_scan   pairing a folder's images with tag files, the tag index, vocabulary and tag matrix
    duplicates    near-duplicate pictures: fingerprints, their cache, pairs and groups
    groups        related images that stay on one side of a split: near-duplicates, --group-by, --groups
    split         the stratified training / validation split and the audit's folds, groups kept whole
    suspects      the audit's ranking of doubtful labels, its CSV, and applying and undoing fixes
    demo          the generated coloured-shapes dataset behind `train.py --demo`
training: torch
    device        picking CUDA, then MPS, then the CPU
    precision     fp32 / bf16 / fp16 per device, and autocast
    distributed   running as several processes under torchrun (DistributedDataParallel)
    transforms    pictures as the network's input: resizing, normalising, training's random changes
    dataset       the PyTorch dataset and the batches that leave unreadable images out
    jpeg_decode   --decode gpu: JPEGs decoded in batches on the GPU
    image_cache   training images decoded once and kept in memory
    loaders       a run's training, validation and refit DataLoaders
    model         a torchvision backbone with a multi-label head (small-input layouts, BatchNorm folding)
    checkpoint    the self-describing model file and the tag-list file
    losses        Asymmetric Loss and BCE
    optimizer     AdamW's parameter groups and the warm-up + cosine schedule
    metrics       mAP, F1 and confusion counts for multi-label predictions, and threshold calibration
    preflight     the training settings checked before any data is read, and --resume's rules
    feature_cache --freeze-backbone's backbone features, computed once
    passes        one pass over a loader: a training epoch, or predictions
    training_loop a whole run: epochs, the best epoch, Ctrl-C and --resume, calibration
    inference     the Tagger that runs a checkpoint fast over a folder, and tag choice
    export        converting a model file (--save-as) and ONNX export
outputs: what people read
    plots         matplotlib's pictures: a run's curves and precision-recall, the notebooks' grids
    pages         the self-contained HTML pages: run report, duplicates, contact sheet
    review        the review pages: a keyboard viewer of suggested tag changes, saved for prepare.py fix
    run_report    a finished run's report page, per-tag table and plots, beside the model
audit
    audit         the label audit's out-of-fold predictions (training on k-1 folds, predicting one)
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
