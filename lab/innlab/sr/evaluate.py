"""PSNR / SSIM of a super-resolution model on the test images, and how to run one on an image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from innlab.sr.data import TEST_IMAGES, bicubic_up, pair
from innlab.sr.metrics import psnr, rgb_to_y, ssim

__all__ = ["evaluate", "is_luma", "super_resolve"]


def is_luma(model: nn.Module) -> bool:
    """Whether ``model`` maps a bicubic-upscaled Y channel to Y (SRCNN) instead of RGB to RGB
    (read from its first convolution's input channels)."""
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d) or hasattr(m, "full_in"))
    return int(getattr(first, "in_channels", 3)) == 1


@torch.no_grad()
def super_resolve(model: nn.Module, low: Tensor, scale: int) -> Tensor:
    """Upscale RGB ``low`` ``(3, h, w)`` in [0, 1] by ``scale`` -> ``(3, h s, w s)`` in [0, 1].

    An RGB model (EDSR) sees ``low`` itself; a luma model (SRCNN) sees the Y channel of the
    bicubic upscaling, whose chroma is kept (the SR convention)."""
    if not is_luma(model):
        return model(low[None])[0].clamp(0, 1)
    up = bicubic_up(low, scale)
    y = rgb_to_y(up)
    y_new = model(y[None])[0]
    return (up + _luma_shift(y_new - y)).clamp(0, 1)


def _luma_shift(dy: Tensor) -> Tensor:
    """The RGB change that moves Y by ``dy`` and keeps Cb and Cr (BT.601): the same for R, G
    and B, since the Y weights sum to 219/255 per unit of grey."""
    return dy * 255.0 / 219.0


def evaluate(
    model: nn.Module | str,
    scale: int,
    images: Sequence[str] = TEST_IMAGES,
) -> dict[str, Any]:
    """Mean and per-image PSNR / SSIM (Y channel, ``scale`` pixels cropped at each border).

    Args:
        model: an SR network (RGB -> RGB, or luma: bicubic-upscaled Y -> Y), or ``"bicubic"``.
    """
    rows = {}
    for name in images:
        low, hr = pair(name, scale)
        if isinstance(model, str):  # "bicubic", the reference row
            out = bicubic_up(low, scale)
        elif is_luma(model):
            with torch.no_grad():
                out = model(rgb_to_y(bicubic_up(low, scale))[None])[0]
            hr = rgb_to_y(hr)
        else:
            out = super_resolve(model, low, scale)
        rows[name] = {"psnr": psnr(out, hr, scale), "ssim": ssim(out, hr, scale)}
    return {
        "psnr": sum(r["psnr"] for r in rows.values()) / len(rows),
        "ssim": sum(r["ssim"] for r in rows.values()) / len(rows),
        "images": rows,
    }
