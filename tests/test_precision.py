"""Arithmetic precision: what auto picks on each device, and what is refused."""

import pytest
import torch

from common.errors import UserError
from common.precision import autocast, cpu_has_fast_bf16, resolve_precision

CPU = torch.device("cpu")


def test_auto_is_bf16_on_the_cpu_only_with_bf16_hardware():
    assert resolve_precision("auto", CPU, fast_cpu_bf16=True) == "bf16"
    assert resolve_precision("auto", CPU, fast_cpu_bf16=False) == "fp32"
    assert resolve_precision("auto", torch.device("mps"), fast_cpu_bf16=True) == "fp32"


def test_explicit_choices_are_kept_and_fp16_on_the_cpu_is_refused():
    assert resolve_precision("bf16", CPU, fast_cpu_bf16=False) == "bf16"
    assert resolve_precision("fp32", CPU, fast_cpu_bf16=True) == "fp32"
    with pytest.raises(UserError, match="fp16 is for GPUs"):
        resolve_precision("fp16", CPU)
    with pytest.raises(UserError, match="auto, fp32, bf16, fp16"):
        resolve_precision("fp8", CPU)


@pytest.mark.parametrize("flags, fast", [("fpu sse avx512f avx512_bf16 avx512_vnni", True),
                                         ("fpu sse amx_bf16 amx_tile", True),
                                         ("fpu sse avx2 avx512f avx512bw", False)])
def test_bf16_hardware_is_read_from_the_cpu_flags(tmp_path, flags, fast):
    description = tmp_path / "cpuinfo"
    description.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_fast_bf16(str(description)) is fast


def test_without_a_cpu_description_bf16_is_not_assumed(tmp_path):
    assert cpu_has_fast_bf16(str(tmp_path / "missing")) is False


def test_autocast_lowers_matrix_products_and_fp32_leaves_them_alone():
    left, right = torch.randn(4, 8), torch.randn(8, 3)
    with autocast(CPU, "bf16"):
        assert (left @ right).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert (left @ right).dtype == torch.float32
