"""The training loop: one TrainingRun holds a run's model, data, optimizer and history; the module's
fit(run) trains it and keeps the best epoch, and finish(run, write_outputs) calibrates the
thresholds, has the report files written (by the function it is given) and saves the model."""

import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from common.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint, save_training_state, write_tag_list
from common.dataset import UnreadableImages, no_readable_images
from common.distributed import Runtime, copy_weights_from_main, from_main, gather_objects, learning_rate_for
from common.passes import full_batches, predict, train_one_epoch
from common.errors import UserError
from common.feature_cache import cache_features
from common.files import further_interrupts_ignored, write_rows
from common.folder_scan import short_list
from common.transforms import IMAGENET_MEAN, IMAGENET_STD
from common.loaders import augments, make_loaders
from common.losses import make_loss
from common.metrics import CALIBRATION_PRIOR_POSITIVES, calibrate_thresholds, evaluate, format_tag_report, tag_report
from common.model import build_model, classifier_head_name, count_parameters, fold_thresholds_into_head, is_pretrained
from common.optimizer import (Optimization, averaged_weights, backbone_lr_factor, make_optimizer, make_scheduler,
                              make_weight_average)
from common.precision import make_grad_scaler
from common.split import LEAKED, optimistic_validation_warning

# Seconds between two writes of the resumable state after an epoch (Ctrl-C writes it at once).
# It holds the optimizer's moments too, three times the model's size (135 MB for ResNet-18): one
# write took 0.1 to 0.5 s here, so writing it after each of ten short epochs cost up to a tenth
# of a 35-s fine-tuning run. A crash loses at most this much training.
STATE_SAVE_INTERVAL = 60

# --refit-epochs auto: the share of the epochs, at the end, in which the held-out images train too
# (after they chose the thresholds), so that the model learns from every image (bench/README.md)
REFIT_SHARE = 0.3
# ... when the last validated epoch's mAP is within this of the best: a few dozen held-out images rank
# epochs only roughly (single runs differ by about two points), and the last ones of a cosine
# schedule are seldom worse than an earlier peak by more than that (bench/README.md)
REFIT_TOLERANCE = 0.02
# Which thresholds the final model keeps after those epochs (see thresholds_after_refit): chosen
# again on its held-out predictions, which beat keeping those chosen before on every suite set
# from scratch (+0.015 ± 0.004 test micro-F1 over 28 runs) and gained +0.006 to +0.009 when
# fine-tuning (bench/README.md)
REFIT_THRESHOLDS = "recalibrated"
REFIT_DESCRIPTIONS = {"carried": "kept", "shifted": "moved by that change",
                      "recalibrated": "chosen again on the final model's predictions",
                      "by-positives": "moved toward those chosen again, the more the more positives a tag has"}


class ValidationResults(NamedTuple):
    """The final model's predictions for the validation images, and what was chosen from them."""

    targets: np.ndarray  # (images x tags) 0/1
    probabilities: np.ndarray  # before the thresholds were folded into the model
    positions: np.ndarray  # each row's place in the validation part (unreadable images left out)
    thresholds: np.ndarray  # one per tag, chosen on these predictions (the model may keep others: calibrate)
    tag_rows: list  # metrics.tag_report's rows, worst first


@dataclass
class TrainingRun:
    """Everything one run needs and produces, so the functions below take one argument."""

    args: object
    outputs: dict  # the run's files: model, tags, last.pth, metrics.csv, report.html, ... (train.py)
    vocabulary: list
    split_names: dict
    model: torch.nn.Module
    trainable: torch.nn.Module  # the whole model, or only its head with --freeze-backbone
    train_loader: DataLoader
    validation_loader: DataLoader | None
    refit_loader: DataLoader | None  # training and held-out images, for the last epochs (see hand_over)
    runtime: Runtime
    unreadable: UnreadableImages = field(default_factory=UnreadableImages)
    history: list = field(default_factory=list)
    best: dict | None = None
    epochs_done: int = 0
    state_saved_at: float = field(default_factory=time.monotonic)
    # Once the last epochs begin: {"active": False} when the held-out images keep validating, else
    # {"active": True, "epoch": the last validated one, "thresholds": chosen then, "targets",
    # "probabilities" and "positions": the held-out predictions they were chosen on}
    refit: dict | None = None

    def __post_init__(self):
        learning_rate = learning_rate_for(self.args.lr, self.processes.world_size, self.args.lr_scaling)
        optimizer = make_optimizer(self.trainable, learning_rate, self.args.weight_decay, backbone_lr_factor(self.args))
        # Under torchrun, DistributedDataParallel averages the gradients of all processes in every
        # backward pass, so each process takes the same step; evaluation uses the plain module.
        self.train_module = self.trainable
        if self.processes.is_distributed:
            self.train_module = DistributedDataParallel(
                self.trainable, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            print(f"processes: {self.processes.world_size} | global batch: {self.args.batch_size} x "
                  f"{self.processes.world_size} = {self.args.batch_size * self.processes.world_size} | learning "
                  f"rate: {self.args.lr:g} scaled ({self.args.lr_scaling}) to {learning_rate:g}")
        total_steps = self.args.epochs * full_batches(self.train_loader)
        self.optimization = Optimization(make_loss(self.args.loss), optimizer,
                                         make_scheduler(optimizer, total_steps, self.args.warmup),
                                         make_grad_scaler(self.device, self.precision),
                                         make_weight_average(self.trainable, total_steps, getattr(self.args, "ema", 0)))

    # The parts of the runtime and the optimization, by name
    device = property(lambda self: self.runtime.device)
    precision = property(lambda self: self.runtime.precision)
    processes = property(lambda self: self.runtime.processes)
    loss_function = property(lambda self: self.optimization.loss_function)
    optimizer = property(lambda self: self.optimization.optimizer)
    scheduler = property(lambda self: self.optimization.scheduler)
    scaler = property(lambda self: self.optimization.scaler)
    averaged = property(lambda self: self.optimization.averaged)

    def checkpoint(self, metrics, thresholds, **extra):
        return make_checkpoint(self.model, arch=self.args.arch, tags=self.vocabulary, thresholds=thresholds,
                               image_size=self.args.image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                               settings=settings_of(self.args), metrics=metrics, epoch=metrics["epoch"], **extra)

    def save_state(self):
        """What --resume needs; written (by the main process) now and then (see fit) and on Ctrl-C."""
        self.state_saved_at = time.monotonic()
        if not self.processes.is_main:
            return
        save_training_state({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                             "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                             "epochs_done": self.epochs_done, "best": self.best, "history": self.history,
                             "vocabulary": self.vocabulary, "split": self.split_names, "refit": self.refit,
                             "settings": settings_of(self.args),
                             **({"averaged": self.averaged.state_dict()} if self.averaged else {})},
                            self.outputs["last.pth"])

    def restore(self, state):
        if state["vocabulary"] != self.vocabulary:
            raise UserError(f"the tags in {self.args.data} changed since the interrupted run; start a fresh run "
                            "without --resume")
        before = state["settings"].get("process_count", state["settings"].get("processes", 1))  # (older files)
        if before != self.processes.world_size:  # the schedule counts steps, and steps depend on it
            raise UserError(f"the interrupted run used {before} process(es) and this one {self.processes.world_size}: "
                            "resume with the same torchrun --nproc_per_node and --nnodes (or without torchrun)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.averaged is not None:
            self.averaged.load_state_dict(state["averaged"])
        self.epochs_done, self.best, self.history = state["epochs_done"], state["best"], state["history"]
        self.refit = state.get("refit")
        print(f"resuming after epoch {self.epochs_done} (best so far: epoch {self.best and self.best['epoch']})")


def build_training_run(args, data, split, split_names, small_input, runtime, outputs=None, decoded=None):
    """A run ready for its first epoch on `runtime` (a Runtime): loaders over `split` of `data` (image
    paths, targets, vocabulary), and the model (its backbone's features computed once with
    --freeze-backbone). decoded: the images already decoded in memory (see make_loaders)."""
    paths_of_images, targets, vocabulary = data
    device, precision, processes = runtime.device, runtime.precision, runtime.processes
    loaders = make_loaders(args, paths_of_images, targets, split, device, augments(args), processes,
                           for_training=not args.freeze_backbone, decoded=decoded,
                           with_refit=refit_epoch_count(args) > 0)
    model = build_model(args.arch, len(vocabulary), args.weights, small_input=small_input).to(device)
    if args.sync_batchnorm and processes.is_distributed:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type in ("cuda", "cpu"):  # convolutions run faster on channels-last tensors there
        model = model.to(memory_format=torch.channels_last)
    print(f"model: {args.arch} ({count_parameters(model) / 1e6:.1f} M parameters), weights: {args.weights}"
          f"{', adapted to small inputs (--small-input)' if small_input else ''}"
          f"{', backbone frozen' if args.freeze_backbone else ''}")
    trainable, unreadable = model, UnreadableImages()
    if args.freeze_backbone:
        if not is_pretrained(args.weights):
            print("warning: --freeze-backbone with --weights none trains the last layer on random features; "
                  "it is meant for pretrained weights")
        loaders = [*cache_features(model, loaders[:2], args, device, precision, unreadable, processes), None]
        trainable = model.get_submodule(classifier_head_name(model))
    return TrainingRun(args, outputs or {}, vocabulary, split_names, model, trainable, *loaders, runtime,
                       unreadable=unreadable)


def settings_of(args):
    return {key: value for key, value in vars(args).items() if key not in ("demo", "yes", "debug", "resume", "given")}


def announce_unreadable(run):
    """Name the unreadable images that every process met, once, at the end of a run."""
    reasons = {path: reason for part in gather_objects(run.unreadable.reasons) for path, reason in part.items()}
    if reasons:
        print(f"skipped {len(reasons)} unreadable image(s): {short_list(reasons, run.args.data)}. Re-save or "
              "remove them; `python prepare.py check` lists every one with its reason.")
    return reasons


def format_epoch_line(row, epochs):
    line = f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs} | train loss {row['train_loss']:.4f}"
    if row.get("refit"):
        line += " | held-out images train too, no validation"
    elif "mAP" in row:
        line += (f" | val loss {row['val_loss']:.4f} | mAP {row['mAP']:.3f} | micro-F1 {row['micro_f1']:.3f}"
                 f" | macro-F1 {row['macro_f1']:.3f} | TP {row['tp']} FP {row['fp']} FN {row['fn']} TN {row['tn']}")
    return line + f" | {row['seconds']:.0f} s" + (" | saved" if row["saved"] else "")


def shuffle_for_epoch(loader, seed, epoch):
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)  # a different shuffle each epoch, the same in every process
    elif loader.generator is not None:
        # each epoch's shuffle follows from the seed and the epoch alone, so that a resumed run draws
        # the same batches as the uninterrupted run would have
        loader.generator.manual_seed(seed * 1_000_003 + epoch)


def run_epoch(run, epoch):
    """Train one epoch and validate; returns the epoch's row, whose "saved" says whether it is the
    best so far (and then also run.best). In the last epochs after hand_over, the epoch trains on
    the training and held-out images together, as many steps as any other, and validates nothing."""
    refitting = bool(run.refit and run.refit["active"])
    loader = run.refit_loader if refitting else run.train_loader
    shuffle_for_epoch(loader, run.args.seed, epoch)
    train_loss, images_seen = train_one_epoch(run.train_module, loader, run.optimization, run.runtime, run.unreadable,
                                              f"epoch {epoch}/{run.args.epochs}",
                                              steps=full_batches(run.train_loader) if refitting else None)
    if refitting:  # the model to keep is the latest; its figures stay those of the last validated epoch
        run.best = {**run.best, "epoch": epoch, "validated_epoch": run.refit["epoch"]}
        return {"epoch": epoch, "train_loss": train_loss, "lr": run.scheduler.get_last_lr()[0], "refit": True,
                "saved": True}
    if images_seen == 0:
        training_images = set(run.train_loader.dataset.paths)
        if training_images <= set(announce_unreadable(run)):
            raise no_readable_images(run.args.data)
        raise UserError(f"too few readable training images in {run.args.data} to fill one batch of "
                        f"{run.args.batch_size}: lower --batch-size, or add images")
    row = {"epoch": epoch, "train_loss": train_loss, "lr": run.scheduler.get_last_lr()[0]}
    if run.validation_loader is not None:
        # DistributedDataParallel keeps the parameters equal, but each process's last steps updated its
        # BatchNorm statistics with its own images; validate (and save) rank 0's, as one model
        with averaged_weights(run.trainable, run.averaged):  # (--ema: validate the average, which is kept)
            copy_weights_from_main(run.trainable, buffers_only=True)
            val_loss, targets, probabilities, _ = predict(run.trainable, run.validation_loader, run.device,
                                                       run.precision, run.unreadable, run.loss_function)
        if targets is not None:
            row |= {"val_loss": val_loss, **evaluate(targets, probabilities, [0.5] * len(run.vocabulary))}
    row["saved"] = run.best is None or "mAP" not in row or row["mAP"] > run.best["mAP"]
    if row["saved"]:  # every process computed the same metrics, so they agree on this
        run.best = {key: value for key, value in row.items() if key not in ("saved", "lr")}
    return row


def save_best(run):
    """Write the best epoch's model and the tag list (the main process does)."""
    if run.processes.is_main:
        with averaged_weights(run.trainable, run.averaged):
            save_checkpoint(run.checkpoint(run.best, [0.5] * len(run.vocabulary)), run.outputs["model"])
        write_tag_list(run.outputs["tags"], run.vocabulary)


def fit(run):
    """The epoch loop, with early stopping; Ctrl-C saves the state for --resume and exits."""
    try:
        for epoch in range(run.epochs_done + 1, run.args.epochs + 1):
            if patience_ran_out(run):  # checked here, so that a run resumed after it stopped early stops too
                print(f"stopping early: validation mAP has not improved for {run.args.patience} epochs")
                break
            started = time.time()
            if epoch == first_refit_epoch(run) and run.refit is None:
                hand_over(run)
            row = run_epoch(run, epoch)
            row["seconds"] = time.time() - started
            # The epoch is done and recorded before its model is written, so that a Ctrl-C during the
            # write (held back until the file is complete) saves a state that resumes after this epoch.
            run.history.append(row)
            run.epochs_done = epoch
            if row["saved"]:
                save_best(run)
                row["seconds"] = time.time() - started  # with the writing
            print(format_epoch_line(row, run.args.epochs))
            if run.processes.is_main:
                columns = dict.fromkeys(key for earlier in run.history for key in earlier)  # refit rows lack some
                write_rows(run.outputs["metrics.csv"], run.history, list(columns))
            if (epoch == run.args.epochs or patience_ran_out(run)
                    or time.monotonic() - run.state_saved_at >= STATE_SAVE_INTERVAL):
                run.save_state()
    except KeyboardInterrupt:
        with further_interrupts_ignored():  # torchrun passes Ctrl-C on a second time: finish saving
            run.save_state()
        model = run.outputs["model"]
        if run.best:
            best = f"the best model (epoch {run.best['epoch']}) is in {model}"
        else:
            best = f"no epoch finished, so {model} was not written" + (" and holds the previous model"
                                                                        if model.exists() else "")
        print(f"\ninterrupted: {best}; `python train.py --resume` with the same settings continues the run")
        raise SystemExit(130)
    announce_unreadable(run)


def refit_epoch_count(args):
    """How many of the last epochs also train on the held-out images (--refit-epochs): auto is
    REFIT_SHARE of them; none without held-out images or with --freeze-backbone (cached features)."""
    if not args.val_fraction or args.freeze_backbone:
        return 0
    setting = getattr(args, "refit_epochs", 0)  # (the label audit's runs have none)
    return min(int(args.epochs * REFIT_SHARE) if setting == "auto" else setting, args.epochs - 1)


def first_refit_epoch(run):
    count = refit_epoch_count(run.args) if run.refit_loader is not None else 0
    return run.args.epochs - count + 1 if count else None


def hand_over(run):
    """Before the last epochs: when validation mAP is still at its best (within REFIT_TOLERANCE), the
    held-out images, having chosen the thresholds, join the training images, so that the model users
    get has learned from every image. When it fell further from an earlier peak, they keep
    validating, and the best epoch is kept."""
    last = run.history[-1] if run.history else {}
    predictions = None
    if "mAP" in last and last["mAP"] >= run.best["mAP"] - REFIT_TOLERANCE:
        with averaged_weights(run.trainable, run.averaged):
            predictions = predict(run.trainable, run.validation_loader, run.device, run.precision, run.unreadable)
    if predictions is None or predictions.targets is None:
        run.refit = {"active": False}
        print(f"the held-out images keep validating to the end: validation mAP peaked at epoch "
              f"{run.best and run.best.get('epoch')} and has fallen by more than {REFIT_TOLERANCE} since")
        return
    thresholds = calibrate_thresholds(predictions.targets, predictions.probabilities)
    run.refit = {"active": True, "epoch": last["epoch"], "thresholds": thresholds.tolist(),
                 **{name: torch.from_numpy(np.asarray(getattr(predictions, name)))
                    for name in ("targets", "probabilities", "positions")}}
    later = (f"epoch {run.args.epochs}" if last["epoch"] + 1 == run.args.epochs
             else f"epochs {last['epoch'] + 1}-{run.args.epochs}")
    print(f"{later}: the {len(predictions.targets)} held-out images train too, having chosen the thresholds at "
          f"epoch {last['epoch']} (--refit-epochs)")


def patience_ran_out(run):
    return bool(run.args.patience and run.best and run.epochs_done - run.best["epoch"] >= run.args.patience)


def finish(run, write_outputs=None):
    """Calibrate per-tag thresholds on the validation set, fold them into the model, and save it.
    Returns the final metrics. Under torchrun every process predicts its share of the validation
    images and computes the same thresholds; the main process writes the files. write_outputs(run,
    validation): writes what people read about the run (train.py passes common/run_report.py's),
    before the final save, so that a run killed in between writes them again when resumed;
    validation is None without a validation set, else a ValidationResults."""
    writes = run.processes.is_main
    saved = load_checkpoint(run.outputs["model"]) if writes else None  # the main process saved the best epoch
    if writes:
        run.model.load_state_dict(saved["state_dict"])
    copy_weights_from_main(run.model)
    # A run killed after its final save but before clearing up is resumed to here with its calibrated
    # model saved: calibrating that again would shift its thresholds twice, so only the clearing up is left
    calibrated = from_main(writes and "calibration" in saved and saved["epoch"] == run.best["epoch"])
    metrics = (from_main(saved["metrics"] if writes else None) if calibrated
               else calibrate(run, writes, write_outputs or (lambda run, validation: None)))
    if writes:
        run.outputs["last.pth"].unlink(missing_ok=True)  # the run is complete: nothing left to resume
    summary = ", ".join(f"{name} {metrics[name]:.3f}" for name in ("mAP", "micro_f1", "macro_f1") if name in metrics)
    validated = (f"; the held-out images trained after epoch {metrics['validated_epoch']}, whose validation this is"
                 if "validated_epoch" in metrics else "")
    print(f"saved the model from epoch {metrics['epoch']} ({summary or 'no validation set'}{validated}) to "
          f"{run.outputs['model']}")
    print(f"saved the tag list ({len(run.vocabulary)} tags) to {run.outputs['tags']}; the report "
          f"{run.outputs['report.html'].name}, curves, tables and the split are beside the model")
    if run.split_names.get(LEAKED):
        print(optimistic_validation_warning(run.split_names[LEAKED], len(run.split_names["validation"])))
    return metrics


def calibrate(run, writes, write_outputs):
    """Per-tag thresholds from the validation set, folded into the model, which is saved after
    write_outputs; returns the final metrics."""
    metrics = dict(run.best)
    validation = None
    if run.validation_loader is not None and "mAP" in metrics:
        refit = None
        # The figures shown are those of the held-out images while unseen, at the thresholds chosen on
        # them; after the held-out images trained, the model keeps thresholds chosen again (see above)
        if run.refit and run.refit["active"]:
            targets, probabilities, positions = (run.refit[name].numpy() for name in
                                                 ("targets", "probabilities", "positions"))
            shown_thresholds = np.array(run.refit["thresholds"])
            thresholds, refit = thresholds_after_refit(run, targets, probabilities, shown_thresholds)
        else:
            _, targets, probabilities, positions = predict(run.trainable, run.validation_loader, run.device,
                                                           run.precision, run.unreadable)
            thresholds = shown_thresholds = calibrate_thresholds(targets, probabilities)
        calibrated = evaluate(targets, probabilities, shown_thresholds)
        print(f"calibrated per-tag thresholds on the validation set: micro-F1 {metrics['micro_f1']:.3f} -> "
              f"{calibrated['micro_f1']:.3f}, macro-F1 {metrics['macro_f1']:.3f} -> {calibrated['macro_f1']:.3f} "
              "(measured on the images the thresholds were chosen on, so a little optimistic)")
        report = tag_report(targets, probabilities, shown_thresholds, run.vocabulary)
        print(f"per-tag report, worst first (all tags in {run.outputs['report.csv']}):\n{format_tag_report(report)}")
        fold_thresholds_into_head(run.model, thresholds)
        metrics |= {f"{name}_at_0.5": metrics[name] for name in ("micro_f1", "macro_f1")}
        metrics |= {name: calibrated[name] for name in ("micro_f1", "macro_f1", "tp", "fp", "fn", "tn")}
        validation = ValidationResults(targets, probabilities, positions, shown_thresholds, report)
    if writes:
        write_outputs(run, validation)
        if validation is not None:
            calibration = {"thresholds": np.asarray(thresholds).tolist(), "folded_into_head": True,
                           **({"refit": refit} if refit else {})}
            save_checkpoint(run.checkpoint(metrics, [0.5] * len(run.vocabulary), calibration=calibration),
                            run.outputs["model"])
    return metrics


def thresholds_after_refit(run, targets, before, thresholds):
    """The thresholds for the final model, from those chosen on the held-out predictions `before`
    the held-out images trained (see REFIT_THRESHOLDS), and what the others would have been:
    carried (unchanged), shifted (each tag's by the mean change of its held-out logits since),
    recalibrated (chosen again on the final model's held-out predictions, which have now been
    trained on) and by-positives (each tag's between carried and recalibrated, by its held-out
    positives). Returns (thresholds, {"from_epoch", "alternatives", "chosen"})."""
    _, _, after, positions = predict(run.trainable, run.validation_loader, run.device, run.precision, run.unreadable)
    if after is None or not np.array_equal(positions, run.refit["positions"].numpy()):
        after = before  # (images that became unreadable since: the thresholds stay as they were chosen)
    logit = torch.logit(torch.from_numpy(np.stack([before, after])).double().clamp(1e-6, 1 - 1e-6)).numpy()
    shift = (logit[1] - logit[0]).mean(0)
    carried = torch.logit(torch.from_numpy(thresholds).double().clamp(1e-4, 1 - 1e-4)).numpy()
    recalibrated = calibrate_thresholds(targets, after)
    # by-positives: each tag between the two, the more recalibrated the more held-out positives it has
    trust = targets.sum(0) / (targets.sum(0) + CALIBRATION_PRIOR_POSITIVES)
    alternatives = {"carried": thresholds, "shifted": np.round(1 / (1 + np.exp(-(carried + shift))), 4),
                    "recalibrated": recalibrated,
                    "by-positives": np.round(trust * recalibrated + (1 - trust) * np.asarray(thresholds), 4)}
    chosen = alternatives[REFIT_THRESHOLDS]
    print(f"the held-out images trained in epochs {run.refit['epoch'] + 1}-{run.epochs_done}: their logits moved by "
          f"{np.abs(shift).mean():.2f} per tag on average; the thresholds chosen at epoch {run.refit['epoch']} "
          f"are {REFIT_DESCRIPTIONS[REFIT_THRESHOLDS]}")
    return chosen, {"from_epoch": run.refit["epoch"], "chosen": REFIT_THRESHOLDS,
                    "mean_logit_shift": float(np.abs(shift).mean()),
                    "alternatives": {name: np.asarray(value).tolist() for name, value in alternatives.items()}}
