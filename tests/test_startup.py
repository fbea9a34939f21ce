"""Answering at once: --help, a mistyped setting and prepare.py's text commands run in a fresh
interpreter without loading torch or the other slow libraries (bench/startup.py times them)."""

import json
import subprocess
import sys

import pytest
from conftest import CHILD_ENVIRONMENT, REPOSITORY, save_image

# Seconds to import, on a 2-core machine: torch 3.4, torchvision 6.3 (with torch), scikit-learn and
# matplotlib about 1 each, SciPy 0.3 to 0.5, cleanlab (with scikit-learn) 1.5
SLOW_LIBRARIES = ("torch", "torchvision", "sklearn", "matplotlib", "scipy", "cleanlab")

# Runs a script as `python SCRIPT ARGS` would, then prints which slow libraries it loaded
PROBE = """
import json, os, runpy, sys
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as `python SCRIPT` puts the script's folder first
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    code = stop.code
else:
    code = 0
print(json.dumps({"loaded": [name for name in %r if name in sys.modules], "code": code}))
""" % (SLOW_LIBRARIES,)


def loaded_by(*command, cwd):
    """(slow libraries loaded, exit code, what the script printed) of one run in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", PROBE, str(REPOSITORY / command[0]), *command[1:]], cwd=cwd,
                            env=CHILD_ENVIRONMENT, capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["loaded"], report["code"], result.stdout + result.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script", ["train.py", "infer.py", "prepare.py"])
def test_help_loads_no_slow_library(script, tmp_path):
    loaded, code, output = loaded_by(script, "--help", cwd=tmp_path)
    assert code == 0 and "usage:" in output
    assert loaded == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("flags, named", [(["--batch-size", "0"], "--batch-size"), (["--loss", "foo"], "--loss"),
                                          (["--backbone-lr", "2"], "--backbone-lr"),
                                          (["--augment", "sideways"], "--augment")])
def test_a_mistyped_training_setting_is_refused_before_any_slow_library_loads(flags, named, tmp_path):
    loaded, code, output = loaded_by("train.py", "--data", str(tmp_path), "--model", "m.pth", *flags, cwd=tmp_path)
    assert code != 0 and named in output and "Traceback" not in output
    assert loaded == []


@pytest.mark.timeout(120)
def test_a_mistyped_inference_setting_is_refused_before_any_slow_library_loads(tmp_path):
    loaded, code, output = loaded_by("infer.py", "--input", str(tmp_path), "--model", "m.pth", "--precision", "fp64",
                                     cwd=tmp_path)
    assert code != 0 and "--precision" in output and "Traceback" not in output
    assert loaded == []


@pytest.mark.timeout(120)
def test_prepare_text_commands_never_load_torch(tmp_path):
    """tag, folders, fix and undo read and write text files and copy pictures: nothing slow. check
    decodes every picture to find unreadable ones and near-duplicates (SciPy joins the groups), but
    needs no torch either."""
    folder = tmp_path / "photos"
    for number in range(3):
        save_image(folder / f"a{number}.png", colour=(40 * number, 90, 10))
        (folder / f"a{number}.png.txt").write_text("cat\n", encoding="utf-8")
        save_image(tmp_path / "classes" / "dog" / f"b{number}.png", colour=(10, 40 * number, 90))
    suspects = tmp_path / "marked.csv"
    suspects.write_text("image,tag,kind,given,probability,score,accept\na0.png,dog,missing,0,0.9,0.9,yes\n",
                        encoding="utf-8")
    for command in (["tag", str(folder), "--add", "indoor"], ["folders", str(tmp_path / "classes"),
                                                               str(tmp_path / "sorted")],
                    ["fix", str(folder), "--suspects", str(suspects)]):
        loaded, code, output = loaded_by("prepare.py", *command, cwd=tmp_path)
        assert code in (0, None), output
        assert loaded == [], command
    assert (folder / "a0.png.txt").read_text(encoding="utf-8").split() == ["cat", "indoor", "dog"]
    undo_file = next(tmp_path.glob("photos.undo-*.json"))
    loaded, code, output = loaded_by("prepare.py", "undo", str(undo_file), cwd=tmp_path)
    assert code in (0, None) and loaded == [], output
    assert (folder / "a0.png.txt").read_text(encoding="utf-8").split() == ["cat", "indoor"]
    loaded, code, output = loaded_by("prepare.py", "check", str(folder), cwd=tmp_path)
    assert code in (0, None) and "torch" not in loaded and "torchvision" not in loaded, output


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script", ["train.py", "infer.py"])
def test_a_missing_model_setting_is_named_before_any_slow_library_loads(script, tmp_path):
    loaded, code, output = loaded_by(script, cwd=tmp_path)
    assert code == 2 and "--model" in output and "Traceback" not in output
    assert loaded == []
