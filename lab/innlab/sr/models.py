"""Super-resolution networks of the paper's experiments, as plain fx-traceable modules.

* :class:`SRCNN` (Dong et al. 2014): three convolutions (9-5-5 kernels, 64 and 32 channels) on
  the Y channel of a bicubic-upscaled image.
* :class:`EDSR` (Lim et al. 2017, the "baseline" variant): residual blocks without BatchNorm,
  residual scaling, a global skip and a ``PixelShuffle`` upsampler, on RGB.

Both default to sizes that train in minutes on a CPU (see :func:`srcnn` and :func:`edsr`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["EDSR", "SRCNN", "ResidualBlock", "edsr", "srcnn"]

# the mean RGB of DIV2K (Lim et al.'s code subtracts it before the head): a fixed constant
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class SRCNN(nn.Module):
    """Three convolutions mapping a bicubic-upscaled Y channel to the high-resolution one.

    ``residual=True`` (the default here) predicts the difference to the bicubic input, as VDSR
    does: the same three layers, but trainable to beyond bicubic in minutes instead of days.
    Padding keeps the image size (the original uses valid convolutions).

    Shape: ``(N, 1, H, W) -> (N, 1, H, W)``.
    """

    def __init__(
        self, channels: tuple[int, int] = (64, 32), kernels: tuple[int, int, int] = (9, 5, 5),
        residual: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        c1, c2 = channels
        k1, k2, k3 = kernels
        self.scale = 1  # works on upscaled inputs
        self.residual = residual
        self.conv1 = nn.Conv2d(1, c1, k1, padding=k1 // 2)
        self.conv2 = nn.Conv2d(c1, c2, k2, padding=k2 // 2)
        self.conv3 = nn.Conv2d(c2, 1, k3, padding=k3 // 2)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return x + out if self.residual else out


class ResidualBlock(nn.Module):
    """``x + res_scale * conv(relu(conv(x)))``, no normalisation."""

    def __init__(self, channels: int, res_scale: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.conv2(self.relu(self.conv1(x)))


class EDSR(nn.Module):
    """Enhanced deep residual network for single-image super-resolution.

    head conv -> ``blocks`` residual blocks -> conv, plus the head's output (global skip) ->
    upsampler (``conv(F -> F r^2)`` + ``PixelShuffle(r)``, twice for x4) -> tail conv. Inputs are
    RGB in [0, 1]; the DIV2K mean is subtracted before the head and added back after the tail.

    Shape: ``(N, 3, H, W) -> (N, 3, H * scale, W * scale)``.
    """

    def __init__(
        self, scale: int = 4, channels: int = 64, blocks: int = 16, res_scale: float = 0.1
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"EDSR: scale must be 2, 3 or 4, got {scale}")
        self.scale = scale
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_MEAN).reshape(1, 3, 1, 1))
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(channels, res_scale) for _ in range(blocks)))
        self.body_end = nn.Conv2d(channels, channels, 3, padding=1)
        steps = [2, 2] if scale == 4 else [scale]
        upsampler: list[nn.Module] = []
        for r in steps:
            upsampler += [nn.Conv2d(channels, channels * r * r, 3, padding=1), nn.PixelShuffle(r)]
        self.upsample = nn.Sequential(*upsampler)
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x - self.rgb_mean)
        h = h + self.body_end(self.body(h))
        return self.tail(self.upsample(h)) + self.rgb_mean


def srcnn() -> SRCNN:
    """SRCNN x3 as in the paper (9-5-5, 64/32 channels; 57 K parameters), residual."""
    return SRCNN()


def edsr(scale: int = 4) -> EDSR:
    """EDSR-baseline reduced for CPU training: 8 residual blocks of 32 channels (the paper's
    baseline has 16 of 64, 1.5 M parameters at x4); about 0.24 M parameters at x4."""
    return EDSR(scale=scale, channels=32, blocks=8)
