"""Channel counts a device runs fast: the default ``round_to`` of a plan.

A pruned layer whose channel count is off the device's tile size runs on slower kernels: on
the GPU benchmark (``benchmarks/results/gpu-h200/``) ResNet-18 exported at 80 % width with
arbitrary widths was 1.25x *slower* than the full network at batch 32. NVIDIA's Deep Learning
Performance Guide (Matrix Multiplication Background, "Tensor Core Requirements") asks for
dimensions that are multiples of 8 for 16-bit floats and of 4 for TF32 (float32 on tensor
cores).

On the CPU, measured here (``benchmarks/results/channel-alignment-cpu``, AVX-512): a convolution
4 or 8 channels below a multiple of 16 takes 1.3-1.4x the time per MAC of the multiple (1x1 and
depthwise at batch 1), since oneDNN keeps channels in blocks of one vector register (16 floats
under AVX-512, 8 under AVX2), and torchvision's MobileNetV2 planned at MAC budgets with widths
rounded so ran faster than unrounded in every row. The CPU's multiple is therefore its vector
width in floats, read from the kernels PyTorch dispatches to on this machine
(``torch.backends.cpu.get_cpu_capability``): a plan for ``"cpu"`` is a plan for this CPU.

A group narrower than ``MIN_STEPS`` multiples is not rounded by default: it would keep fewer
than ``MIN_STEPS`` widths to choose from (a 16-channel group could not shrink at all), and a
layer that narrow is too small for the blocking to dominate its time.
"""

from __future__ import annotations

import numpy as np
import torch

from inn.errors import InnError

__all__ = ["HALF_DTYPES", "MIN_STEPS", "device_round_to", "group_round_to"]

HALF_DTYPES = (torch.float16, torch.bfloat16)
"""The 16-bit float types, which tensor cores take in tiles of 8."""

MIN_STEPS = 8
"""A group is rounded by default only where it is at least this many multiples wide."""

_CPU_FLOATS_PER_VECTOR = {"AVX512": 16, "AVX2": 8}


def device_round_to(device: str | torch.device, dtype: torch.dtype = torch.float32) -> int:
    """The channel multiple ``device`` runs ``dtype`` fast on: CUDA 8 (16-bit floats) or 4
    (float32 through TF32); on the CPU its vector width in floats (16 under AVX-512, 8 under
    AVX2, else 1)."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as err:
        raise InnError(f"{device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1')") from err
    if kind == "cuda":
        return 8 if dtype in HALF_DTYPES else 4
    if kind == "cpu":
        return _CPU_FLOATS_PER_VECTOR.get(torch.backends.cpu.get_cpu_capability(), 1)
    return 1


def group_round_to(multiple: int, full: np.ndarray) -> np.ndarray:
    """The default multiple per group ``(G,)`` of full widths ``full``: ``multiple`` where the
    group is at least ``MIN_STEPS`` multiples wide, else 1."""
    return np.where(np.asarray(full) >= MIN_STEPS * multiple, multiple, 1).astype(float)
