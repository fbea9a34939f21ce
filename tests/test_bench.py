"""The benchmark scripts that must never go stale run here, small: the GPU check in its CPU mode, and
the crash trials."""

import re
import subprocess
import sys

import pytest
from conftest import CHILD_ENVIRONMENT, REPOSITORY


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_gpu_check_runs_every_stage_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, str(REPOSITORY / "bench" / "gpu_check.py"), "--quick", "--device", "cpu"],
                            cwd=tmp_path, env=CHILD_ENVIRONMENT, capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("| stage | what |")[1]
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| a", "| a", "| b", "| b", "| c", "| c",
                                                                           "| d", "| e", "| f"]
    assert re.search(r"\| b \| infer.py --decode cpu, 24 JPEGs \| \d+ images/s \| \d+% of \(a\)", table)
    assert "model loads" in table and re.search(r"bf16 (9\d|100)\.\d\d%", table)
    assert re.search(r"onnxruntime agrees within \d\.\de-0[5-9]", table)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_crash_trials_find_no_torn_or_lost_file_and_no_leftover(tmp_path):
    """bench/crash_trials.py in small: kill -9 of infer.py and train.py at random moments, two runs at
    once, a file-size limit (and a full tmpfs where it may be mounted). Every problem count must be 0."""
    result = subprocess.run([sys.executable, str(REPOSITORY / "bench" / "crash_trials.py"), "--infer-trials", "4",
                             "--train-trials", "3", "--concurrent-trials", "1", "--images", "150", "--seed", "1",
                             "--keep", str(tmp_path / "work")], cwd=tmp_path, env=CHILD_ENVIRONMENT,
                            capture_output=True, text=True, timeout=850)
    counts = {name.strip(): int(count) for name, count in re.findall(r"^(\S.*?)\s{2,}(\d+)(?:  <-)?$", result.stdout,
                                                                    re.MULTILINE)}
    problems = result.stdout.split("problems (each must be 0):")[1]
    assert result.returncode == 0 and "  <-" not in problems, result.stdout + result.stderr
    assert len(problems.strip().splitlines()) >= 20 and "Traceback" not in result.stderr
    assert sum(count for name, count in counts.items() if name.startswith("infer kills while")) == 4
    assert sum(count for name, count in counts.items() if name.startswith("train kills while")) == 3
    assert counts["infer second runs refused in one line"] + counts["train second runs refused in one line"] >= 1
    assert result.stdout.count(": one line, files intact") >= 3
