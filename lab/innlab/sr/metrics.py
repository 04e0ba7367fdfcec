"""Image-quality measures of the super-resolution literature: PSNR and SSIM on the Y channel
(ITU-R BT.601) with ``border`` pixels cropped at every edge."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from inn import ShapeError

__all__ = ["psnr", "rgb_to_y", "ssim"]

_Y_WEIGHTS = (65.481, 128.553, 24.966)  # BT.601 for R, G, B in [0, 1] -> Y in [16, 235]


def rgb_to_y(image: Tensor) -> Tensor:
    """``(..., 3, H, W)`` RGB in [0, 1] -> ``(..., 1, H, W)`` luma Y in [16/255, 235/255]."""
    if image.shape[-3] != 3:
        raise ShapeError(f"rgb_to_y needs 3 channels at dim -3, got shape {tuple(image.shape)}")
    w = torch.tensor(_Y_WEIGHTS, dtype=image.dtype, device=image.device).reshape(3, 1, 1)
    return (16.0 + (image * w).sum(-3, keepdim=True)) / 255.0


def _as_y(image: Tensor) -> Tensor:
    """An image ``(C, H, W)`` or ``(1, C, H, W)`` with C = 1 (already Y) or 3 (RGB) -> Y (H, W)."""
    image = image.detach().to(torch.float64)
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ShapeError(f"expected one image (C, H, W) with C = 1 or 3, got {tuple(image.shape)}")
    return (rgb_to_y(image) if image.shape[0] == 3 else image)[0]


def _cropped(pred: Tensor, target: Tensor, border: int) -> tuple[Tensor, Tensor]:
    a, b = _as_y(pred), _as_y(target)
    if a.shape != b.shape:
        raise ShapeError(f"prediction {tuple(a.shape)} and target {tuple(b.shape)} differ in size")
    if border < 0 or 2 * border >= min(a.shape):
        raise ShapeError(f"border {border} leaves nothing of a {tuple(a.shape)} image")
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return a, b


def psnr(pred: Tensor, target: Tensor, border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB of the Y channels (peak 1; pixels clipped to [0, 1]).

    Args:
        pred, target: ``(C, H, W)`` or ``(1, C, H, W)``, C = 3 (RGB in [0, 1]) or 1 (Y).
        border: pixels dropped at each edge (the scale factor, by convention).
    """
    a, b = _cropped(pred.clamp(0, 1), target, border)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(pred: Tensor, target: Tensor, border: int = 0) -> float:
    """Structural similarity of the Y channels, by scikit-image with the settings of Wang et
    al. (2004): Gaussian window of sigma 1.5, population covariances, data range 1."""
    from skimage.metrics import structural_similarity

    a, b = _cropped(pred.clamp(0, 1), target, border)
    value = structural_similarity(
        np.asarray(a), np.asarray(b), data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )  # fmt: skip
    return float(value)
