"""Choosing where the model runs: CUDA, then Apple's MPS, then the CPU."""

import torch

from common.choices import DEVICE_CHOICES
from common.errors import UserError



def mps_is_available():
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def available_devices():
    """The kinds of device present, fastest first; the CPU is always there."""
    return tuple(kind for kind, present in (("cuda", torch.cuda.is_available()), ("mps", mps_is_available()),
                                            ("cpu", True)) if present)


def pick_device(requested="auto", available=None):
    """Return the torch.device to use. 'auto' takes the fastest one present; asking for a
    device that is not present is an error rather than a silent fall back to the CPU.
    available: the kinds present, fastest first (available_devices() when not given)."""
    available = available_devices() if available is None else available
    requested = (requested or "auto").strip().lower()
    kind = requested.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise UserError(f"unknown device '{requested}': use one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")
    index = requested.partition(":")[2]
    if index and not index.isdigit():
        raise UserError(f"unknown device '{requested}': a device index must be a number, as in cuda:0")
    if kind == "auto":
        return torch.device(available[0])
    if kind == "cuda" and "cuda" not in available:
        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU. Install a CUDA build of "
                        "PyTorch (see pytorch.org) or use --device auto or --device cpu.")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise UserError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) are present")
    if kind == "mps" and "mps" not in available:
        raise UserError("--device mps was asked for, but MPS is not available (it needs an Apple-silicon Mac "
                        "and a recent PyTorch). Use --device auto or --device cpu.")
    return torch.device(requested)


def describe_device(device):
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
