"""Checks that run before a training run reads any data or writes anything: each mistake in the
settings is one line that names the setting, found in a second rather than after minutes of scanning
and decoding. Also --resume's rule for which settings come from the interrupted run."""

from pathlib import Path

from common.errors import UserError
from common.files import check_output_file
from common.groups import check_group_settings
from common.model import check_architecture

# Settings a resumed run may change: they alter how the run is carried out, not what it computes.
CHANGEABLE_ON_RESUME = {"epochs", "patience", "device", "workers", "cache_mb", "index_cache", "yes", "debug",
                        "env_file", "resume"}


def check_training_settings(args, outputs):
    """Raise a UserError naming the first setting that cannot work; touch nothing."""
    data = Path(args.data)
    if not data.is_dir():
        what = "is a file, not a folder" if data.exists() else "does not exist"
        raise UserError(f"--data {data} {what}: give the folder of training images and their tag files "
                        f"(relative paths start from {Path.cwd()})")
    for key, what in (("model", "model"), ("tags", "tag list"), ("suspects", "suspects CSV")):
        if key in outputs:  # a training run writes a model and its tags, an audit its suspects
            check_output_file(outputs[key], what)
    if args.index_cache:
        check_output_file(args.index_cache, "--index-cache file")
    refit = getattr(args, "refit_epochs", 0)
    if refit != "auto" and refit and args.val_fraction and refit >= args.epochs:
        raise UserError(f"--refit-epochs {refit} leaves none of the {args.epochs} epochs to validate: give fewer "
                        f"than --epochs, or auto")
    check_group_settings(args)  # before the weights, whose check may wait on a download
    check_architecture(args.arch, args.image_size, args.weights)


def apply_resumed_settings(args, state, model_path):
    """--resume: the interrupted run's settings replace the defaults and .env, so that
    `train.py --resume --model M` is enough. A setting given on the command line or in the
    environment must agree with the run's, except those in CHANGEABLE_ON_RESUME; --epochs may
    be raised. Prints what is resumed."""
    saved, done = state["settings"], state["epochs_done"]
    for name, value in saved.items():
        if not hasattr(args, name) or name in ("process_count", "processes"):  # ("processes": older files)
            continue
        if name in args.given and name not in CHANGEABLE_ON_RESUME and not _same(getattr(args, name), value):
            raise UserError(f"{args.given[name]} {getattr(args, name)} differs from the interrupted run's {value}, "
                            "which cannot change in the middle of a run: leave it out to resume, or start a new "
                            "run without --resume")
        if name not in args.given:
            setattr(args, name, value)
    if args.epochs == "auto":  # given as auto: the interrupted run's, which it resolved
        args.epochs = saved["epochs"]
    if args.epochs < done:
        raise UserError(f"--epochs {args.epochs} is fewer than the {done} epochs the run of {model_path} has already "
                        f"done: give at least {done + 1} to train on, or leave --epochs out to finish its "
                        f"{saved['epochs']}")
    print(f"resuming {model_path}: {done} of {args.epochs} epochs done | data: {args.data} | {args.arch} at "
          f"{args.image_size} px, weights: {args.weights} | batch {args.batch_size}, lr {args.lr:g}")


def _same(given, saved):
    """Equal values, or two spellings of the same path."""
    if given == saved:
        return True
    if isinstance(given, str) and isinstance(saved, str):
        return Path(given).resolve() == Path(saved).resolve()
    return False


def describe_finished_run(model_path, checkpoint):
    """What --resume says when there is nothing left to resume."""
    epochs = checkpoint.get("settings", {}).get("epochs")
    return UserError(f"the run of {model_path} is complete ({checkpoint.get('epoch')} of {epochs} epochs, the best "
                     f"kept), so there is nothing to resume. To train it further, start a new run from it: "
                     f"--weights {model_path} --model NEW.pth")
