"""The benchmark scripts that must never go stale run here, small: the GPU check in its CPU mode."""

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
