"""Channel counts a device runs fast: the default ``round_to`` of a plan.

A pruned layer whose channel count is off the device's tile size runs on slower kernels: on
the GPU benchmark (``benchmarks/results/gpu-h200/``) ResNet-18 exported at 80 % width with
arbitrary widths was 1.25x *slower* than the full network at batch 32. NVIDIA's Deep Learning
Performance Guide (Matrix Multiplication Background, "Tensor Core Requirements") asks for
dimensions that are multiples of 8 for 16-bit floats and of 4 for TF32 (float32 on tensor
cores).

On the CPU the default stays 1, by measurement. oneDNN keeps channels in blocks of one vector
register (16 floats under AVX-512): a convolution 4 or 8 channels below a multiple of 16 takes
1.3-1.4x the time per MAC (``benchmarks/results/channel-alignment-cpu``), and torchvision's
MobileNetV2 at 224 x 224 planned at MAC budgets with ``round_to=16`` ran faster in every row
there. But on small inputs the blocking does not show: the zoo's MobileNetV2, MobileNetV3 and
EfficientNet (28 x 28 digits) pruned with ``round_to=16`` ran within 0.02 of their unrounded
latency and moved by -0.9 to +0.3 points of accuracy (``results/cpu-rounding``). The CPU's
multiple is the caller's to ask for: ``round_to=16`` (8 under AVX2) where the layers are large.
"""

from __future__ import annotations

import torch

from inn.errors import InnError

__all__ = ["HALF_DTYPES", "device_round_to"]

HALF_DTYPES = (torch.float16, torch.bfloat16)
"""The 16-bit float types, which tensor cores take in tiles of 8."""


def device_round_to(device: str | torch.device, dtype: torch.dtype = torch.float32) -> int:
    """The multiple every width of a plan is rounded to for ``device`` running ``dtype``:
    CUDA 8 (16-bit floats) or 4 (float32 through TF32), else 1."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as err:
        raise InnError(f"{device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1')") from err
    if kind != "cuda":
        return 1
    return 8 if dtype in HALF_DTYPES else 4
