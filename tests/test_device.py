"""Device choice: CUDA, then MPS, then CPU; a device that is not there is an error."""

import pytest
import torch

from common.device import available_devices, pick_device
from common.errors import UserError


@pytest.mark.parametrize("available, expected", [(("cuda", "mps", "cpu"), "cuda"), (("cuda", "cpu"), "cuda"),
                                                 (("mps", "cpu"), "mps"), (("cpu",), "cpu")])
def test_auto_picks_cuda_then_mps_then_the_cpu(available, expected):
    assert pick_device("auto", available) == torch.device(expected)
    assert pick_device(None, available) == torch.device(expected)
    assert pick_device(" Auto ", available) == torch.device(expected)


def test_the_devices_present_end_with_the_cpu_and_auto_takes_the_first():
    present = available_devices()
    assert present[-1] == "cpu" and set(present) <= {"cuda", "mps", "cpu"}
    assert ("cuda" in present) == torch.cuda.is_available()
    assert pick_device("auto").type == present[0]


def test_cpu_is_always_available():
    assert pick_device("CPU", ("cpu",)) == torch.device("cpu")


def test_asking_for_a_missing_gpu_is_an_error_that_says_what_to_do():
    with pytest.raises(UserError, match="--device cpu"):
        pick_device("cuda", ("mps", "cpu"))
    with pytest.raises(UserError, match="MPS is not available"):
        pick_device("mps", ("cuda", "cpu"))


def test_a_present_gpu_is_used_when_asked_for():
    assert pick_device("mps", ("mps", "cpu")) == torch.device("mps")


def test_unknown_device_names_the_choices():
    with pytest.raises(UserError, match="auto, cuda, mps, cpu"):
        pick_device("tpu")
    with pytest.raises(UserError, match="index"):
        pick_device("cuda:x")
