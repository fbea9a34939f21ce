"""infer.py's first import lets idle OpenMP threads sleep, unless the user chose otherwise."""

import subprocess
import sys

from conftest import CHILD_ENVIRONMENT, REPOSITORY

SHOW_POLICY = "import common.idle_threads, os; print(os.environ['OMP_WAIT_POLICY'])"


def policy_after_import(environment):
    result = subprocess.run([sys.executable, "-c", SHOW_POLICY], cwd=REPOSITORY, env=environment,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def test_idle_threads_sleep_by_default_and_a_users_choice_is_kept():
    environment = {key: value for key, value in CHILD_ENVIRONMENT.items() if key != "OMP_WAIT_POLICY"}
    assert policy_after_import(environment) == "PASSIVE"
    assert policy_after_import({**environment, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
