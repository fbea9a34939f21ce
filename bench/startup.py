"""How fast the scripts answer when they have nothing heavy to do: --help, a mistyped setting, and
prepare.py tagging a folder of 1,000 tag files.

    python bench/startup.py               # each command 5 times, in fresh processes: the medians
    python bench/startup.py --runs 9

Each command runs in a fresh interpreter, one after another, and is timed from its start to its
exit, as a person at a terminal waits for it. For scale, the same machine imports torch alone
(`python -c "import torch"`), and torch with torchvision, in the last rows: what every command
took before the scripts imported them only once the settings were checked.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
GOALS = {"help": 1.0, "bad setting": 1.5, "tag": 1.5}  # seconds, the median of the runs


def timed(command, cwd):
    """Seconds from the start of `command` to its exit, and its exit code."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, result.returncode


def tag_folder(folder, count):
    """`count` tag files, each the sidecar of a small picture, as prepare.py tag finds them."""
    from PIL import Image

    folder.mkdir()
    picture = Image.new("RGB", (8, 8), (200, 30, 30))
    for number in range(count):
        picture.save(folder / f"{number:05d}.png")
        (folder / f"{number:05d}.png.txt").write_text("cat\nindoor\n", encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (the median is shown)")
    parser.add_argument("--files", type=int, default=1000, help="tag files for prepare.py tag")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        tag_folder(work / "photos", args.files)
        commands = [
            ("help", "python train.py --help", [python, str(REPOSITORY / "train.py"), "--help"]),
            ("help", "python infer.py --help", [python, str(REPOSITORY / "infer.py"), "--help"]),
            ("help", "python prepare.py --help", [python, str(REPOSITORY / "prepare.py"), "--help"]),
            ("bad setting", "python train.py --batch-size 0",
             [python, str(REPOSITORY / "train.py"), "--data", "photos", "--model", "m.pth", "--batch-size", "0"]),
            ("bad setting", "python train.py --loss foo",
             [python, str(REPOSITORY / "train.py"), "--data", "photos", "--model", "m.pth", "--loss", "foo"]),
            ("bad setting", "python infer.py --precision fp64",
             [python, str(REPOSITORY / "infer.py"), "--input", "photos", "--model", "m.pth", "--precision", "fp64"]),
            # a new tag each run, so that every run rewrites every tag file
            ("tag", f"python prepare.py tag DIR --add TAG ({args.files:,} tag files, each rewritten)",
             [python, str(REPOSITORY / "prepare.py"), "tag", "photos", "--add", "reviewed-{run}"]),
            ("", "for scale: python -c 'import torch'", [python, "-c", "import torch"]),
            ("", "for scale: python -c 'import torchvision'", [python, "-c", "import torchvision"]),
        ]
        rows = []
        for kind, name, command in commands:
            seconds = []
            for run in range(args.runs):
                elapsed, code = timed([part.format(run=run) for part in command], work)
                seconds.append(elapsed)
            median = statistics.median(seconds)
            goal = GOALS.get(kind)
            verdict = "" if goal is None else ("met" if median <= goal else "MISSED")
            rows.append((name, median, min(seconds), max(seconds), f"<= {goal:.1f} s {verdict}" if goal else ""))
            print(f"{name}: median {median:.2f} s (exit code {code})", flush=True)
    print(f"\n| command | median of {args.runs} | fastest | slowest | goal |\n|---|---|---|---|---|")
    for name, median, fastest, slowest, goal in rows:
        print(f"| `{name}` | {median:.2f} s | {fastest:.2f} s | {slowest:.2f} s | {goal} |")


if __name__ == "__main__":
    main()
