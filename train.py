"""Train a multi-label image tagger on a folder of images with sidecar tag files.

    python train.py --demo        # make a small demo dataset, train on it, then tag a folder with the model
    python train.py --data training/ --model models/tagger.pth
    python train.py --arch resnet18 --weights none --image-size 64 --epochs 10 --yes
    python train.py --resume --model models/tagger.pth      # continue a run that was interrupted

Each setting comes from its flag, else an environment variable, else .env, else the block below.
"""

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import common  # noqa: F401  (first: a quiet Ctrl-C even while torch loads)
from common.choices import (AUGMENT_CHOICES, DECODE_CHOICES, DEFAULT_ARCH, DEVICE_CHOICES, GROUP_DUPLICATES_CHOICES,
                            LOSS_CHOICES, LR_SCALING_CHOICES, PRECISION_CHOICES, SMALL_INPUT_CHOICES, WEIGHT_CHOICES)
from common.demo import write_demo_dataset
from common.duplicates import fingerprint_cache_path
from common.errors import UserError, exit_on_user_error, loading_libraries
from common.files import keep_a_copy, remove_leftover_temporaries, run_lock
from common.folder_scan import load_training_data
from common.groups import related_images
from common.settings import (MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, SettingsParser, auto_or_whole_number,
                             backbone_lr_setting, number, require, whole_number)
from common.tagfiles import default_tag_file, read_tag_file

# torch, and the modules built on it, are imported inside the functions that train, once the
# settings are parsed: --help and a mistyped setting answer at once instead of after 5 seconds.
# The modules above read folders, pictures and text alone.

# ----------------------------------------------------------------------------- settings
# The defaults. A flag, an environment variable or a .env key (in that order) overrides each one.
num_epochs = "auto"  # passes over the training images; auto: 14 fine-tuning in bf16/fp16, else 10
batch_size = 32  # images per optimizer step; lower it if you run out of (GPU) memory
image_size = 224  # pixels: every image is resized to image_size x image_size
learning_rate = 3e-3  # AdamW's peak step size, reached after the warm-up, then decayed along a cosine
backbone_lr = "auto"  # the pretrained layers' learning rate as a share of --lr; auto: 0.3 pretrained, 1 from scratch
warmup_fraction = 0.1  # share of all steps spent raising the learning rate from zero
weight_decay = 0.05  # AdamW's weight decay, for weights only (never biases or normalisation layers)
augment = "off"  # on: random crops, flips and colour changes (in 10-epoch runs they cost quality) | flip | off
loss = "asl"  # asl (Asymmetric Loss: +2 to +5 mAP points over bce, bench/README.md) | bce (binary cross-entropy)
arch = DEFAULT_ARCH  # any torchvision classifier: resnet18/34/50/101/152, efficientnet_b0, convnext_tiny, ...
weights = "imagenet"  # imagenet (downloaded once) | none (train from scratch) | PATH to a .pth file
val_fraction = 0.1  # share of the images held out to pick the best epoch and calibrate thresholds
refit_epochs = "auto"  # last epochs in which the held-out images train too, once they chose the thresholds; auto: 30 %
ema = 0  # share of the steps a running average of the weights spans (validated and kept instead of them); 0: none
min_tag_count = 1  # tags on fewer images than this are dropped (and named) before training
patience = 0  # stop after this many epochs without a better validation mAP; 0 never stops early
precision = "auto"  # auto (bf16/fp16 on CUDA, bf16 on CPUs with bf16 hardware, else fp32) | fp32 | bf16 | fp16
small_input = "auto"  # ResNets at <= 96 px: auto (last on from scratch in bf16/fp16) | on | last | off
seed = 0  # makes the validation split and the initial weights repeatable
device = "auto"  # auto (cuda, then mps, then cpu) | cuda | mps | cpu
decode = "auto"  # JPEGs not kept in memory: auto (gpu on CUDA) | gpu (nvJPEG, in batches) | cpu (the workers)
workers = min(4, os.cpu_count() or 1)  # background processes decoding images; 0 decodes in the main one
cache_mb = 2048  # MB of memory for keeping decoded training images, so later epochs decode nothing; 0: never
index_cache = ""  # PATH: a file that remembers the tag files, so that large folders re-scan fast; "" for none
lr_scaling = "sqrt"  # under torchrun: sqrt (x sqrt(processes), right for AdamW) | linear (x processes) | none
sync_batchnorm = False  # under torchrun on GPUs: BatchNorm statistics over the global batch (slower; for tiny batches)
group_duplicates = "on"  # on: near-duplicate images stay on one side of the split (found either way) | off
group_by = ""  # REGEX: images whose names give the same first capture group stay together, e.g. '^(\d+)_p\d+'
groups = ""  # PATH: a CSV with the columns group,image listing related images (prepare.py duplicates writes one)
overwrite_countdown = 5  # seconds to wait, in a terminal, before replacing an existing model

# `--demo` runs with these instead of .env, so that it works in a fresh clone.
DEMO_FOLDER = Path("demo")
DEMO_SETTINGS = dict(data=str(DEMO_FOLDER / "train"), model=str(DEMO_FOLDER / "model.pth"), arch="resnet18",
                     weights="none", image_size=64, epochs=12, yes=True)


EXAMPLES = """examples:
  python train.py --demo                                        # a demo dataset, a model, tagged pictures
  python train.py --data photos/ --model models/tagger.pth      # train on your folder (ImageNet weights)
  python train.py --data photos/ --model models/tagger.pth --weights none --image-size 128 --epochs 20
  python train.py --resume --model models/tagger.pth            # continue an interrupted run
"""


def get_args_parser():
    parser = SettingsParser(description="Train a multi-label image tagger on images with sidecar tag files.",
                            epilog=EXAMPLES)
    parser.renamed_flags = {"--tags": "--tag-list"}
    add = parser.add_argument
    add("--data", help="folder of training images and their tag files (.env: TRAINING)")
    add("--model", help="where to save the model, e.g. models/tagger.pth (.env: MODEL)")
    add("--tag-list", "--tags", dest="tags", help="where to save the model's tag list: .txt, .json or .pkl "
                                                  "(.env: TAGS); default: NAME.tags.txt beside the model")
    add("--arch", default=arch, type=str.lower, help="torchvision architecture (.env: ARCH)")
    add("--weights", default=weights, help=f"starting weights: {WEIGHT_CHOICES} (.env: WEIGHTS)")
    add("--epochs", type=auto_or_whole_number(1), default=num_epochs,
        help="passes over the data; auto: 14 when pretrained weights train in bf16 or fp16, which makes epochs "
             "cheap, else 10 (.env: EPOCHS)")
    add("--batch-size", type=whole_number(1), default=batch_size, help="images per step (.env: BATCH_SIZE)")
    add("--image-size", type=whole_number(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), default=image_size,
        help="input side in pixels (.env: IMAGE_SIZE)")
    add("--lr", type=number(above=0), default=learning_rate, help="peak learning rate (.env: LEARNING_RATE)")
    add("--backbone-lr", default=backbone_lr, type=backbone_lr_setting,
        help="learning rate of every layer but the new last one, as a share of --lr; auto: 0.3 with pretrained "
             "weights, 1 from scratch (.env: BACKBONE_LR)")
    add("--warmup", type=number(0, 1), default=warmup_fraction, help="share of the steps spent warming up")
    add("--weight-decay", type=number(minimum=0), default=weight_decay, help="AdamW weight decay")
    add("--loss", default=loss, choices=LOSS_CHOICES, help="training loss (.env: LOSS)")
    add("--freeze-backbone", action="store_true",
        help="train only the new last layer, on backbone features computed once (fast; needs pretrained weights)")
    add("--augment", default=augment, choices=AUGMENT_CHOICES,
        help="on: random crops, flips and colour changes in training, for long runs; flip: left-right "
             "mirroring alone (.env: AUGMENT)")
    add("--no-augment", dest="augment", action="store_const", const="off", help="the same as --augment off")
    add("--val-fraction", type=number(minimum=0, below=1), default=val_fraction,
        help="share held out for validation (.env: VAL_FRACTION)")
    add("--refit-epochs", type=auto_or_whole_number(0), default=refit_epochs,
        help="the last N epochs also train on the held-out images, once these chose the thresholds (when validation "
             "mAP is still rising then; else they keep validating); auto: 30 %% of --epochs; 0: never "
             "(.env: REFIT_EPOCHS)")
    add("--ema", type=number(0, 1), default=ema, metavar="SHARE",
        help="validate and keep an exponential moving average of the weights over this share of the steps, "
             "e.g. 0.1; 0: the weights as trained (.env: EMA)")
    add("--min-tag-count", type=whole_number(1), default=min_tag_count, help="drop tags on fewer images than this")
    add("--group-duplicates", default=group_duplicates, choices=GROUP_DUPLICATES_CHOICES,
        help="keep near-duplicate images (resized, re-encoded, cropped, framed or brightened copies) on one side of "
             "the split; off still counts the validation images that have one in training (.env: GROUP_DUPLICATES)")
    add("--group-by", default=group_by, metavar="REGEX",
        help="keep images together whose paths give the same first capture group (or whole match), e.g. "
             "'^(\\d+)_p\\d+' for the pages of one post (.env: GROUP_BY)")
    add("--groups", default=groups, metavar="CSV",
        help="keep the images of each group of this CSV (columns group,image) together (.env: GROUPS)")
    add("--patience", type=whole_number(0), default=patience,
        help="epochs without improvement before stopping; 0: never (.env: PATIENCE)")
    add("--resume", action="store_true",
        help="continue the interrupted run of --model, with the settings it was started with")
    add("--precision", default=precision, choices=PRECISION_CHOICES, help="arithmetic precision (.env: PRECISION)")
    add("--decode", default=decode, choices=DECODE_CHOICES,
        help="where JPEGs that are not kept in memory are decoded: gpu (nvJPEG), cpu (the workers); auto: gpu on "
             "CUDA (.env: DECODE)")
    add("--small-input", default=small_input, choices=SMALL_INPUT_CHOICES,
        help="let a ResNet's last three stages (on) or last stage (last) work at twice the resolution; auto: last "
             "from scratch in bf16/fp16 at 96 px or less (.env: SMALL_INPUT)")
    add("--seed", type=whole_number(0), default=seed, help="random seed (.env: SEED)")
    add("--device", default=device, help=f"{' | '.join(DEVICE_CHOICES)} (.env: DEVICE)")
    add("--workers", type=whole_number(0), default=workers, help="image-decoding processes (.env: WORKERS)")
    add("--cache-mb", type=whole_number(0), default=cache_mb,
        help="keep the decoded images in memory when they fit in this many MB (.env: CACHE_MB); 0: never")
    add("--recursive", action="store_true", help="also read images in subfolders of --data")
    add("--index-cache", default=index_cache, help="keep the tags of --data in this file and re-read only changed "
                                                   "tag files next time (.env: INDEX_CACHE)")
    add("--lr-scaling", default=lr_scaling, choices=LR_SCALING_CHOICES,
        help="under torchrun, how --lr grows with the number of processes (.env: LR_SCALING)")
    add("--sync-batchnorm", action="store_true", default=sync_batchnorm,
        help="under torchrun on GPUs, compute BatchNorm statistics across all processes")
    add("--yes", action="store_true", help="replace an existing model without the countdown")
    add("--demo", action="store_true", help=f"train on a generated dataset in {DEMO_FOLDER}/, then tag "
                                            f"{DEMO_FOLDER}/infer")
    return parser


def output_files(args):
    """Where everything goes: the model, the tag list, and the run's files beside the model."""
    model = Path(require(args, "model", "model path"))
    beside = {kind: model.with_name(f"{model.stem}.{kind}") for kind in
              ("last.pth", "metrics.csv", "report.csv", "report.html", "suspects.html", "curves.png", "pr.png",
               "split.json")}
    return {"model": model, "tags": Path(args.tags) if args.tags else model.with_name(f"{model.stem}.tags.txt"),
            **beside}


def previous_model_path(model_path):
    return model_path.with_name(f"{model_path.stem}.previous{model_path.suffix}")


def confirm_overwrite(model_path, yes, processes):
    """Never replace a model silently: count down in a terminal, keep a backup elsewhere."""
    if yes or not model_path.exists() or not processes.is_main:
        return
    if sys.stdin.isatty() and sys.stdout.isatty():
        try:
            for remaining in range(overwrite_countdown, 0, -1):
                print(f"\r{model_path} exists and will be replaced in {remaining} s (Ctrl-C keeps it; --yes "
                      "skips this)", end="", flush=True)
                time.sleep(1)
        except KeyboardInterrupt:
            print(f"\nstopped: {model_path} was left as it was")
            raise SystemExit(130)
        print()
    else:
        backup = previous_model_path(model_path)
        keep_a_copy(model_path, backup)  # the model stays in place, whole, until the new one replaces it
        print(f"kept the existing model as {backup} (pass --yes to replace it without a backup)")


def train_tagger(args):
    """The whole training stage. Returns the final metrics of the saved model."""
    output_files(args)  # a missing --model or --data is named before torch loads
    if not args.resume:
        require(args, "data", "training folder")
    with loading_libraries():  # torch and everything built on it (a Ctrl-C meanwhile ends at once)
        from common.run_report import write_run_outputs
        from common.training_loop import finish, fit

    with contextlib.ExitStack() as held:  # the model's lock, once taken, until the end
        run = prepare_run(args, held)
        fit(run)
        return finish(run, write_run_outputs)


def prepare_run(args, held=None):
    """Everything before the first epoch: checks, data, split, loaders, model. The notebook calls
    this, then fit(run) and finish(run, write_run_outputs), to keep the trained model in memory.
    Under torchrun every process runs it; the main one (rank 0) alone prints and writes. held: an
    ExitStack that keeps the lock on the model's files (see lock_outputs) until the caller is done."""
    import torch

    from common.device import describe_device
    from common.distributed import Runtime, from_main, start_processes
    from common.jpeg_decode import resolve_decode
    from common.model import is_pretrained, small_input_layout
    from common.precision import resolve_precision
    from common.preflight import check_training_settings
    from common.split import split_data
    from common.training_loop import build_training_run

    processes, run_device = start_processes(args.device)
    resume_state = read_resume_state(args, processes) if args.resume else None
    require(args, "data", "training folder")
    args.process_count = processes.world_size  # recorded in the checkpoint's settings
    outputs = output_files(args)
    run_precision = resolve_precision(args.precision, run_device)
    args.epochs = resolve_epochs(args.epochs, is_pretrained(args.weights), run_precision)
    resolve_decode(args.decode, run_device)  # --decode gpu without a GPU is refused here, before any work
    check_training_settings(args, outputs)  # before any data is read or anything is written
    if held is not None and processes.is_main:
        lock_outputs(outputs, args, held)
    layout = small_input_layout(args.small_input, args.arch, args.image_size, pretrained=is_pretrained(args.weights),
                                fast_arithmetic=run_precision != "fp32")
    if args.sync_batchnorm and processes.is_distributed and run_device.type != "cuda":
        raise UserError("--sync-batchnorm needs CUDA GPUs; on the CPU leave it out")
    torch.manual_seed(args.seed)
    print(f"device: {describe_device(run_device)} | precision: {run_precision}")
    paths_of_images, targets, vocabulary = load_training_data(args, processes)
    # related images (near-duplicates, --group-by, --groups) stay on one side of the split, found by the
    # main process; a resumed run keeps its split and the groups it recorded
    related = None
    if not resume_state and args.val_fraction:
        related = from_main(related_images(args, paths_of_images) if processes.is_main else None)
    split, split_names = split_data(args, (paths_of_images, targets, vocabulary), resume_state, outputs["split.json"],
                                    processes, related)
    if not resume_state:
        confirm_overwrite(outputs["model"], args.yes, processes)
    run = build_training_run(args, (paths_of_images, targets, vocabulary), split, split_names, layout,
                             Runtime(run_device, run_precision, processes), outputs)
    if resume_state:
        run.restore(resume_state)
    return run


# --epochs auto. Fine-tuning in bf16 or fp16, 10 epochs take 0.7 of a plain fine-tuning loop's
# time; 14 spend what that saves (0.9 of it) and gained 1.5 points of mAP from both stand-ins
# (bench/README.md). In fp32, and from scratch, 10 already come close to the plain loop's time.
EPOCHS = 10
EPOCHS_FINE_TUNING_FAST = 14


def resolve_epochs(setting, pretrained, run_precision):
    """The number of epochs: the setting's, or for auto 14 when pretrained weights train in bf16
    or fp16 and 10 otherwise."""
    if setting != "auto":
        return setting
    return EPOCHS_FINE_TUNING_FAST if pretrained and run_precision != "fp32" else EPOCHS


def lock_outputs(outputs, args, held):
    """One run at a time writes a model: a second one stops at once with one line. Then the
    temporaries of files that a killed run was writing are cleared away."""
    model = outputs["model"]
    held.enter_context(run_lock(model.with_name(f".{model.name}.lock"), f"training {model}",
                                "wait for it to end (or stop it), or give this run another --model", make_folder=True))
    remove_leftover_temporaries([*outputs.values(), previous_model_path(model),
                                 *([args.index_cache, fingerprint_cache_path(args.index_cache)] if args.index_cache
                                   else [])])


def read_resume_state(args, processes):
    """--resume: the interrupted run's state (read by the main process, which wrote it, and sent to
    the others), whose settings then fill in every setting not given again."""
    from common.checkpoint import load_checkpoint, load_training_state
    from common.distributed import from_main
    from common.preflight import apply_resumed_settings, describe_finished_run

    model_path = Path(require(args, "model", "model path"))
    state_path = model_path.with_name(f"{model_path.stem}.last.pth")
    if processes.is_main and not state_path.exists() and model_path.is_file():
        raise describe_finished_run(model_path, load_checkpoint(model_path))
    state = from_main(load_training_state(state_path) if processes.is_main else None)
    apply_resumed_settings(args, state, model_path)
    return state


def run_demo(args):
    import infer  # the demo ends by tagging a folder, exactly as infer.py would

    truth = write_demo_dataset(DEMO_FOLDER)
    print(f"demo: wrote {args.data} (training images with tags) and {DEMO_FOLDER / 'infer'} (images to tag)")
    metrics = train_tagger(args)
    infer_args = infer.get_args_parser().parse_settings(
        ["--input", str(DEMO_FOLDER / "infer"), "--model", args.model, "--overwrite", "--device", args.device,
         "--workers", "0"], use_environment=False)
    infer.tag_folder(infer_args)
    print("\ndemo predictions (file: predicted | true, both in alphabetical order):")
    for path, true_tags in list(truth.items())[:6]:
        predicted = sorted(read_tag_file(default_tag_file(path)))
        print(f"  {path.name}: {', '.join(predicted) or '-'} | {', '.join(sorted(true_tags))}")
    print(f"""
the demo's validation micro-F1 is {metrics.get('micro_f1', math.nan):.3f}. It wrote:
  {args.model}  the model (its tags, thresholds and settings inside)
  {args.data}/  the training pictures and their tag files; {DEMO_FOLDER / 'infer'}/ the pictures it tagged
  {output_files(args)['report.html']}  the run report: open it in a browser
  {output_files(args)['tags']}  the tag list; beside the model: metrics, per-tag report, curves
next, on your own folder of images with tag files (ImageNet weights are downloaded once):
  python train.py --data YOUR_FOLDER --model models/tagger.pth
  python infer.py --input FOLDER_TO_TAG --model models/tagger.pth
or put TRAINING, MODEL and INFERENCE_DIR in .env (cp .env.example .env) and run them without flags.""")
    return metrics


@exit_on_user_error
def main(argv=None):
    parser = get_args_parser()
    demo = "--demo" in (argv if argv is not None else sys.argv[1:])
    if demo:
        parser.set_defaults(**DEMO_SETTINGS)
    args = parser.parse_settings(argv, use_environment=not demo)
    try:
        return run_demo(args) if args.demo else train_tagger(args)
    finally:
        distributed = sys.modules.get("common.distributed")  # loaded once processes were started; a
        if distributed:  # setting refused before that must not wait for torch to load
            distributed.stop_processes()


if __name__ == "__main__":
    main()
