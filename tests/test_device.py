"""Device choice: CUDA, then MPS, then CPU; a device that is not there is an error."""

import pytest
import torch

from common.device import mps_is_available, pick_device
from common.errors import UserError


def test_auto_picks_the_best_available_device():
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps_is_available() else "cpu"
    assert pick_device("auto").type == expected
    assert pick_device(None).type == expected


def test_cpu_is_always_available():
    assert pick_device("CPU") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_missing_cuda_is_an_error_that_says_what_to_do():
    with pytest.raises(UserError, match="--device cpu"):
        pick_device("cuda")


@pytest.mark.skipif(mps_is_available(), reason="this machine has MPS")
def test_asking_for_missing_mps_is_an_error():
    with pytest.raises(UserError, match="MPS is not available"):
        pick_device("mps")


def test_unknown_device_names_the_choices():
    with pytest.raises(UserError, match="auto, cuda, mps, cpu"):
        pick_device("tpu")
    with pytest.raises(UserError, match="index"):
        pick_device("cuda:x")
