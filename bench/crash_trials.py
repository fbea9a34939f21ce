"""Does every file survive the hard ways a run can end? kill -9 at random moments, two runs on
one folder, a full disk: count torn or lost files, leftovers and tracebacks.

    python bench/crash_trials.py                                   # 50 + 30 kills and the rest: ~20 minutes
    python bench/crash_trials.py --infer-trials 5 --train-trials 3 --concurrent-trials 2 --keep /tmp/crash

First it writes a folder of generated pictures to tag (a few of them broken, a few with tag files
of the user's own, some JPEG), a training folder, and a small model, and runs infer.py and
train.py once without interruption for the reference results. Then, each in fresh processes:

    infer.py   started with --csv and --jsonl and SIGKILLed (with its image-decoding processes,
               as by a power cut) at a moment drawn uniformly from an uninterrupted run's lifetime,
               or, every other trial, from its work (from its first line on: not starting Python).
               Every sidecar left must equal the reference's byte for byte, the CSV and JSONL
               must be absent or complete, no file of the user's may change; then the same command
               again (no --overwrite) must finish, leaving exactly the reference folder, with no
               temporary or lock file.
    train.py   started over a previous model and SIGKILLed, in turn, at a uniform moment of the run,
               of its work, of what follows the last epoch (calibration, reports, the final save),
               and while it writes a file (a temporary file has appeared). The model must be the
               previous one or a complete new one, and load; NAME.last.pth, if there, must load
               and --resume must finish the run (else the same command again); the files of the
               training folder must not change.
    together   two infer.py on one folder at once, and two train.py writing one --model: a
               second run must be refused in one line, or have found nothing left to do; no
               sidecar torn or written twice.
    full disk  infer.py and train.py with a file-size limit (ulimit -f) that a table or the model
               would pass, and, where this user may mount one, on a 4-MB tmpfs: one line naming
               the file and the cause, no traceback, the files that were there intact.

Every count of problems must be zero. Runs must not share the machine with other work: the kill
moments are drawn from the uninterrupted runs' timings.
"""

import argparse
import contextlib
import csv
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from common.checkpoint import load_checkpoint, load_training_state  # noqa: E402
from common.demo import write_demo_dataset  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.files import LEFTOVER_TEMPORARY  # noqa: E402
from common.settings import ENVIRONMENT_KEYS  # noqa: E402

INFER_IMAGE_SIZE = 128  # big enough that tagging, not starting Python, takes most of an infer.py run
TRAINING = ["--arch", "resnet18", "--weights", "none", "--image-size", "32", "--batch-size", "16", "--device", "cpu"]
# Without the user's settings (an EPOCHS or DEVICE of theirs would change the runs), and each line
# printed at once: the harness reads from the output where a run was when it was killed
ENVIRONMENT = {**{key: value for key, value in os.environ.items()
                  if key not in {*ENVIRONMENT_KEYS.values(), "MULTITAG_DEBUG"}}, "PYTHONUNBUFFERED": "1"}


def script(name, *args):
    return [sys.executable, str(REPOSITORY / name), *map(str, args)]


def run(command, limit_file_size=None, cwd=None):
    """Run to the end; (exit status, stdout, stderr)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    result = subprocess.run(command, env=ENVIRONMENT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            preexec_fn=limit if limit_file_size else None, timeout=900, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


class Started:
    """A script started in a process group of its own, its output lines collected as they come."""

    def __init__(self, command):
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.lines, self.errors, self.seen_at = [], [], []  # seen_at: seconds from the start to each stdout line
        threading.Thread(target=self._read_lines, daemon=True).start()
        threading.Thread(target=lambda: self.errors.extend(self.process.stderr), daemon=True).start()

    def _read_lines(self):
        for line in self.process.stdout:
            self.seen_at.append(time.monotonic() - self.started)
            self.lines.append(line)

    def kill(self):
        """SIGKILL the script and every process it started, as a power cut would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        time.sleep(0.05)  # the reader threads take the last lines

    def wait(self):
        status = self.process.wait(timeout=900)
        time.sleep(0.05)
        return status

    def printed(self, prefix):
        return any(line.startswith(prefix) for line in list(self.lines))

    def seconds_to(self, prefix):
        """When the first line starting with prefix came, in seconds from the start."""
        return next(at for at, line in zip(self.seen_at, self.lines) if line.startswith(prefix))


def kill_moment(number, lifetime, work_starts, rng):
    """Even trials: uniform over an uninterrupted run's lifetime, most of which is starting Python and
    PyTorch, where nothing is written; odd ones: uniform over its work, from its first line on."""
    return rng.uniform(0, lifetime) if number % 2 == 0 else rng.uniform(work_starts, lifetime)


def snapshot(folder):
    """{path relative to folder: bytes} of every file under folder, hidden ones included."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def leftovers(files):
    """The temporary and lock files among a snapshot's names."""
    return [name for name in files if LEFTOVER_TEMPORARY.match(Path(name).name) or name.endswith(".lock")]


def fresh_copy(source, target):
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)


# ----------------------------------------------------------------------------- the data and references

def write_inputs(work, images, seed):
    """work/source/images (to tag), work/source/train (with tags) and a model trained on the latter."""
    rng = random.Random(seed)
    source = work / "source"
    write_demo_dataset(source, train_count=160, infer_count=images, seed=seed)
    (source / "infer").rename(source / "images")
    pictures = sorted((source / "images").iterdir())
    for path in rng.sample(pictures, len(pictures) // 4):  # a quarter as JPEGs
        Image.open(path).convert("RGB").save(path.with_suffix(".jpg"), quality=90)
        path.unlink()
    pictures = sorted((source / "images").iterdir())
    for number, path in enumerate(rng.sample(pictures, 8)):  # the user's own tag files, both naming styles
        sidecar = path.with_name(path.name + ".txt") if number % 2 else path.with_suffix(".txt")
        sidecar.write_text("my own tag\nanother of mine\n")
    (source / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off here")
    (source / "images" / "not_an_image.png").write_text("hello")
    model = work / "model" / "tagger.pth"
    status, out, err = run(script("train.py", "--data", source / "train", "--model", model, *TRAINING,
                                  "--image-size", INFER_IMAGE_SIZE, "--epochs", 1, "--workers", 0, "--yes"))
    if status:
        raise SystemExit(f"could not train the model to tag with:\n{out}\n{err}")
    return source, model


def infer_command(folder, tables, model):
    return script("infer.py", "--input", folder, "--model", model, "--csv", tables / "all.csv",
                  "--jsonl", tables / "all.jsonl", "--device", "cpu")


def infer_reference(work, source, model):
    """work/reference: the folder and tables an uninterrupted infer.py run leaves; work/infer-seconds:
    how long it took, and when its work began (its first line)."""
    trial = work / "reference"
    fresh_copy(source / "images", trial / "images")
    running = Started(infer_command(trial / "images", trial / "tables", model))
    if running.wait():
        raise SystemExit("infer.py failed without interruption:\n" + "".join(running.lines + running.errors))
    (work / "infer-seconds").write_text(f"{time.monotonic() - running.started} {running.seconds_to('device:')}")


# ----------------------------------------------------------------------------- infer.py

def infer_trials(work, source, model, trials, rng, counts):
    reference = snapshot(work / "reference")
    lifetime, work_starts = map(float, (work / "infer-seconds").read_text().split())
    user_files = {f"images/{name}": data for name, data in snapshot(source / "images").items()}
    print(f"infer.py: an uninterrupted run takes {lifetime:.1f} s, its work from {work_starts:.1f} s on; {trials} "
          "kills, half at uniform moments in the run, half in its work")
    trial = work / "trial"
    for number in range(trials):
        fresh_copy(source / "images", trial / "images")
        shutil.rmtree(trial / "tables", ignore_errors=True)
        command = infer_command(trial / "images", trial / "tables", model)
        moment = kill_moment(number, lifetime, work_starts, rng)
        running = Started(command)
        time.sleep(moment)
        running.kill()
        phase = ("starting" if not running.printed("device:") else
                 "after tagging" if running.printed("tagged") else "tagging")
        counts[f"infer kills while {phase}"] += 1
        after_kill = snapshot(trial)
        counts["infer kills leaving a temporary or the lock file"] += bool(leftovers(after_kill))
        for name, data in after_kill.items():
            if name in leftovers(after_kill):
                continue
            if name in user_files and data != user_files[name]:
                counts["user files changed"] += 1
            elif reference.get(name) != data:  # a torn sidecar, a partial table, or a file that should not be
                counts["torn or unexpected files after a kill"] += 1
                print(f"  trial {number}: {name} is not what an uninterrupted run writes")
        status, out, err = run(command)  # the same command again: no --overwrite
        final = snapshot(trial)
        counts["infer reruns failed"] += status != 0 or "Traceback" in err
        counts["temporary or lock files outliving the rerun"] += len(leftovers(final))
        missing = set(reference) - set(final)
        counts["files lost (missing after the rerun)"] += len(missing)
        counts["files differing from an uninterrupted run after the rerun"] += sum(
            final[name] != data for name, data in reference.items() if name in final) + len(set(final) - set(reference))
        if status or missing or final != reference:
            print(f"  trial {number}: the rerun did not end as an uninterrupted run\n{out[-2000:]}\n{err[-2000:]}")
    print(f"  done: {trials} infer.py kills")


# ----------------------------------------------------------------------------- train.py

def train_command(data, model, epochs):
    return script("train.py", "--data", data, "--model", model, *TRAINING, "--epochs", epochs)


def output_is_whole(path):
    """Whether a file train.py writes beside the model is complete (each kind read as its readers do)."""
    try:
        if path.suffix == ".pth":
            (load_training_state if path.name.endswith(".last.pth") else load_checkpoint)(path)
        elif path.suffix == ".png":
            Image.open(path).load()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(path.read_text())))
            return len({len(row) for row in rows}) == 1
        elif path.suffix == ".html":
            return path.read_text().rstrip().endswith("</html>")
        elif path.suffix == ".txt":
            return path.read_text().endswith("\n")
    except (UserError, OSError, ValueError, SyntaxError):
        return False
    return True


def train_previous(work, source):
    """work/previous/tagger.pth: the model that every train.py trial replaces."""
    status, out, err = run(train_command(source / "train", work / "previous" / "tagger.pth", 2))
    if status:
        raise SystemExit(f"train.py failed without interruption:\n{out}\n{err}")


def train_trials(work, source, trials, rng, counts, epochs=4):
    data = source / "train"
    data_before = snapshot(data)
    previous = work / "previous" / "tagger.pth"
    previous_bytes = previous.read_bytes()
    timing = work / "timing"
    fresh_copy(previous.parent, timing)
    running = Started(train_command(data, timing / "tagger.pth", epochs))
    writes = writes_seen(running, timing)
    lifetime = time.monotonic() - running.started
    work_starts, last_epoch = running.seconds_to("device:"), running.seconds_to(f"epoch {epochs}/{epochs}")
    print(f"train.py: an uninterrupted {epochs}-epoch run takes {lifetime:.1f} s, its work from {work_starts:.1f} s "
          f"on, its last epoch ends at {last_epoch:.1f} s, and {writes} writes were seen; {trials} kills, in turn "
          "at a uniform moment of the run, of its work, after the last epoch (calibrating and saving), and while "
          "it writes a file")
    folder = work / "train-trial"
    model = folder / "tagger.pth"
    for number in range(trials):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        shutil.copy(previous, model)  # the user's previous model, which the run replaces
        command = train_command(data, model, epochs)
        running = Started(command)
        if number % 4 == 3:  # while the n-th write is under way, n drawn from the writes of a whole run
            writes_seen(running, folder, stop_at=rng.randint(1, writes))
        elif number % 4 == 2:
            time.sleep(rng.uniform(last_epoch, lifetime))
        else:
            time.sleep(kill_moment(number % 4, lifetime, work_starts, rng))
        writing = any(LEFTOVER_TEMPORARY.match(name) for name in os.listdir(folder))
        running.kill()
        phase = ("writing a file" if writing else
                 "starting" if not running.printed("device:") else
                 "loading the data" if not running.printed("model:") else
                 "training" if not running.printed(f"epoch {epochs}/{epochs}") else
                 "calibrating and saving" if not running.printed("saved the model") else "finished")
        counts[f"train kills while {phase}"] += 1
        check_train_outputs(folder, model, previous_bytes, counts, number)
        state = model.with_name("tagger.last.pth")
        recovery = script("train.py", "--resume", "--model", model) if state.exists() else command
        counts["train runs finished with --resume"] += state.exists()
        status, out, err = run(recovery)
        counts["train recoveries failed"] += status != 0 or "Traceback" in err
        final = os.listdir(folder)
        counts["temporary or lock files outliving the rerun"] += len(leftovers(final))
        if leftovers(final):
            print(f"  trial {number}: left after the rerun: {', '.join(leftovers(final))}")
        try:
            finished = "calibration" in load_checkpoint(model) and not state.exists()
        except UserError:
            finished = False
        counts["train runs not finished after the rerun"] += not finished
        if status or not finished:
            print(f"  trial {number}: the run did not finish\n{out[-2000:]}\n{err[-2000:]}")
        counts["user files changed"] += snapshot(data) != data_before
    print(f"  done: {trials} train.py kills")


def writes_seen(running, folder, stop_at=None):
    """Watch `folder` until the run ends, or until the stop_at-th write (a temporary file appearing) is
    under way; return how many were seen."""
    seen, was_writing = 0, False
    while running.process.poll() is None and seen != stop_at:
        writing = any(LEFTOVER_TEMPORARY.match(name) for name in os.listdir(folder))
        seen += writing and not was_writing
        was_writing = writing
        time.sleep(0.001)
    return seen


def check_train_outputs(folder, model, previous_bytes, counts, number):
    """Right after a kill: the model is the previous one or a complete new one, every other file whole."""
    if not model.exists():
        counts["models lost"] += 1
        print(f"  trial {number}: no model at {model}")
    elif model.read_bytes() != previous_bytes and not output_is_whole(model):
        counts["models torn"] += 1
        print(f"  trial {number}: {model} does not load")
    for path in folder.iterdir():
        if path != model and not leftovers([path.name]):
            if path.name == "tagger.previous.pth":
                whole = path.read_bytes() == previous_bytes
            else:
                whole = output_is_whole(path)
            if not whole:
                counts["torn files beside the model"] += 1
                print(f"  trial {number}: {path.name} is not whole")


# ----------------------------------------------------------------------------- two at once

def concurrent_trials(work, source, model, trials, counts):
    reference = snapshot(work / "reference" / "images")
    refusal = re.compile(r"^error: another run \(process \d+\) is (writing tag files in|training) .+: wait for it")
    trial = work / "together"
    for _ in range(trials):
        fresh_copy(source / "images", trial / "images")
        shutil.rmtree(trial / "tables", ignore_errors=True)
        runs = [Started(script("infer.py", "--input", trial / "images", "--model", model, "--device", "cpu",
                               "--csv", trial / "tables" / f"{number}.csv")) for number in (1, 2)]
        statuses = [running.wait() for running in runs]
        judge_pair(runs, statuses, refusal, counts, "infer")
        final = snapshot(trial / "images")
        image_of = {Path(name).stem: name for name in final if not name.endswith((".txt", ".lock"))}
        sidecars_of = {}
        for name in final:
            if name.endswith(".txt"):  # NAME.EXT.txt, or NAME.txt
                sidecars_of.setdefault(name[:-4] if name[:-4] in final else image_of.get(name[:-4]), []).append(name)
        counts["sidecars torn (two infer.py at once)"] += sum(final[name] != reference.get(name) for name in final
                                                               if name not in leftovers(final))
        counts["images with two sidecars (two infer.py at once)"] += sum(len(names) > 1
                                                                          for names in sidecars_of.values())
        counts["files lost (two infer.py at once)"] += len(set(reference) - set(final))
    data = source / "train"
    for _ in range(max(1, trials // 2)):
        folder = work / "together-train"
        shutil.rmtree(folder, ignore_errors=True)
        runs = [Started(train_command(data, folder / "tagger.pth", 2)) for _ in range(2)]
        statuses = [running.wait() for running in runs]
        counts["pairs of train.py on one --model not refused"] += sorted(statuses) != [0, 2]
        judge_pair(runs, statuses, refusal, counts, "train")
        counts["models torn (two train.py at once)"] += not output_is_whole(folder / "tagger.pth")


def judge_pair(runs, statuses, refusal, counts, stage):
    """One run finished; the other finished too (nothing left to do) or was refused in one line."""
    counts[f"{stage} pairs"] += 1
    for running, status in zip(runs, statuses):
        errors = "".join(running.errors).strip().splitlines()
        if status == 2:
            one_line = len(errors) == 1 and bool(refusal.match(errors[0]))
            counts[f"{stage} second runs refused in one line"] += one_line
            counts[f"{stage} refusals not in one line"] += not one_line
            if not one_line:
                print(f"  {stage}.py refused, but not in the expected line:", "\n".join(errors)[-1500:])
        elif status != 0:
            counts[f"{stage} runs failing side by side"] += 1
            print("".join(running.lines)[-1500:], "\n".join(errors)[-1500:])


# ----------------------------------------------------------------------------- full disk

def full_disk_trials(work, source, model, counts):
    one_line = re.compile(r"^error: (could not write \S+: the (disk is full|file would pass the file-size limit)"
                          r"|the image-decoding processes could not hand their images over: a file-size limit)")

    def judge(what, status, err, intact):
        lines = err.strip().splitlines()
        clean = status == 2 and len(lines) == 1 and bool(one_line.match(lines[0])) and "Traceback" not in err
        counts["full-disk runs without one clean line"] += not clean
        counts["full-disk runs that harmed a file"] += not intact
        print(f"  {what}: {'one line' if clean else 'NOT CLEAN'}, files {'intact' if intact else 'HARMED'}: "
              f"{lines[-1] if lines else '(nothing on stderr)'}")

    # a CSV that would pass a file-size limit of 16 KB, over an older complete one; then a batch of
    # images that the decoding processes cannot hand over under the same limit
    for what, workers in (("infer.py, CSV past ulimit -f", ["--workers", "0"]),
                          ("infer.py, a batch past ulimit -f", ["--workers", "2"])):
        trial = work / "full"
        shutil.rmtree(trial, ignore_errors=True)
        fresh_copy(source / "images", trial / "images")
        (trial / "tables").mkdir()
        (trial / "tables" / "all.csv").write_text("an older table\n")
        before = snapshot(trial)
        status, _, err = run(infer_command(trial / "images", trial / "tables", model) + workers,
                             limit_file_size=16 * 1024)
        after = snapshot(trial)
        intact = (after["tables/all.csv"] == before["tables/all.csv"] and not leftovers(after)
                  and all(after.get(name) == data for name, data in before.items()))
        judge(what, status, err, intact)

    # a model that would pass the limit, over a previous one
    folder = work / "full-train"
    fresh_copy(work / "previous", folder)
    previous = (folder / "tagger.pth").read_bytes()
    status, _, err = run(train_command(source / "train", folder / "tagger.pth", 1) + ["--workers", "0", "--yes"],
                         limit_file_size=len(previous) // 2)
    intact = (folder / "tagger.pth").read_bytes() == previous and not leftovers(os.listdir(folder))
    judge("train.py, model past ulimit -f", status, err, intact)

    # a real full disk: a 4-MB tmpfs holding the folder to tag, where this user may mount one
    mount_point = work / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                             capture_output=True).returncode == 0
    if not mounted:
        print("  full disk: skipped (mounting a tmpfs needs root)")
        return
    try:
        folder = mount_point / "images"
        shutil.copytree(source / "images", folder)
        with open(mount_point / "fill", "wb", buffering=0) as fill:  # fill the disk, then free room for a few
            with contextlib.suppress(OSError):                        # dozen tag files
                while True:
                    fill.write(b"\0" * 4096)
            fill.truncate(max(0, fill.tell() - 40 * 4096))
        before, reference = snapshot(folder), snapshot(work / "reference" / "images")
        command = infer_command(folder, work / "full-disk-tables", model)
        status, _, err = run(command)
        after = snapshot(folder)
        intact = (all(after.get(name) == data for name, data in before.items()) and not leftovers(after)
                  and all(data == reference[name] for name, data in after.items() if name not in before))
        judge("infer.py on a full 4-MB disk", status, err, intact)
        (mount_point / "fill").unlink()  # room made: the same command again finishes the folder
        status, _, err = run(command)
        final = snapshot(folder)
        finished = status == 0 and final == reference
        counts["full-disk reruns that did not finish"] += not finished
        print(f"  the same command after making room: {'finished' if finished else 'DID NOT FINISH'}")
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True)


# ----------------------------------------------------------------------------- main

PARTS = ("kill-infer", "kill-train", "together", "full-disk")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--infer-trials", type=int, default=50)
    parser.add_argument("--train-trials", type=int, default=30)
    parser.add_argument("--concurrent-trials", type=int, default=10)
    parser.add_argument("--images", type=int, default=300, help="pictures in the folder to tag")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which trials to run")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    counts = Counts()
    with contextlib.ExitStack() as stack:
        work = Path(args.keep) if args.keep else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        started = time.monotonic()
        source, model = write_inputs(work, args.images, args.seed)
        infer_reference(work, source, model)  # the folder every trial's result is compared with
        if "kill-infer" in args.parts:
            infer_trials(work, source, model, args.infer_trials, rng, counts)
        if "kill-train" in args.parts or "full-disk" in args.parts:
            train_previous(work, source)
        if "kill-train" in args.parts:
            train_trials(work, source, args.train_trials, rng, counts)
        if "together" in args.parts:
            concurrent_trials(work, source, model, args.concurrent_trials, counts)
        if "full-disk" in args.parts:
            full_disk_trials(work, source, model, counts)
        print(f"\n{counts.table()}\n({time.monotonic() - started:.0f} s)")
    return counts


class Counts(dict):
    """Named counters: what happened, and the problems, which must all end at zero."""

    PROBLEMS = ("torn or unexpected files after a kill", "files lost (missing after the rerun)",
                "files differing from an uninterrupted run after the rerun", "infer reruns failed",
                "temporary or lock files outliving the rerun", "user files changed", "models lost", "models torn",
                "torn files beside the model", "train recoveries failed", "train runs not finished after the rerun",
                "sidecars torn (two infer.py at once)", "images with two sidecars (two infer.py at once)",
                "files lost (two infer.py at once)", "infer refusals not in one line", "train refusals not in one line",
                "infer runs failing side by side", "train runs failing side by side",
                "pairs of train.py on one --model not refused", "models torn (two train.py at once)",
                "full-disk runs without one clean line", "full-disk runs that harmed a file",
                "full-disk reruns that did not finish")

    def __init__(self):
        super().__init__(dict.fromkeys(self.PROBLEMS, 0))

    def __missing__(self, key):
        return 0

    def problems(self):
        return {name: self[name] for name in self.PROBLEMS}

    def table(self):
        width = max(map(len, self))
        events = sorted(name for name in self if name not in self.PROBLEMS)
        problems = [f"{name:<{width}}  {self[name]:>4}{'  <-' if self[name] else ''}" for name in self.PROBLEMS]
        return "\n".join([f"{name:<{width}}  {self[name]:>4}" for name in events] + ["problems (each must be 0):"]
                         + problems)


if __name__ == "__main__":
    sys.exit(1 if any(main().problems().values()) else 0)
