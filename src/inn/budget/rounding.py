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

A group narrower than ``MIN_STEPS`` multiples is not rounded by default: it could not shrink
at all (a 16-channel group rounded to 16) or to few widths. Four multiples, not more: the narrow
groups are where a network's time goes at batch 1 (its high-resolution layers). torchvision's
MobileNetV2 at MAC budgets of 80 / 60 / 40 % (224 x 224, batch 1) measured 0.94 / 0.80 / 0.75
of the full latency with groups from 4 multiples rounded, 0.94 / 0.84 / 0.76 from 8 and 0.94 /
0.86 / 0.76 unrounded; EfficientNet-B0 0.92 / 0.82 / 0.77, 0.92 / 0.88 / 0.81 and 0.93 / 0.90 /
0.79 (a probe; ``benchmarks/results/channel-alignment-cpu`` has the committed comparison). From
2 multiples the plans were no faster at 80 / 60 % and a small network's 32-channel group could
only halve. And the multiples stay a default, not a constraint: where they would leave a plan
more than 1 % under its budget (RNet's 128-unit layer moves 10 % of its parameters per step of
16), the plan is made unrounded.
"""

from __future__ import annotations

import numpy as np
import torch

from inn.errors import InnError

__all__ = ["HALF_DTYPES", "MIN_STEPS", "device_round_to", "group_round_to"]

HALF_DTYPES = (torch.float16, torch.bfloat16)
"""The 16-bit float types, which tensor cores take in tiles of 8."""

MIN_STEPS = 4
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
