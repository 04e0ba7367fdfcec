"""Super-resolution with integral networks: models, data from installed packages, metrics.

The models themselves are also in :mod:`innlab.zoo` (``SR_ZOO``)."""

from innlab.sr.data import (
    TEST_IMAGES,
    TRAIN_IMAGES,
    SRPatches,
    bicubic_down,
    bicubic_up,
    load_image,
    pair,
)
from innlab.sr.evaluate import evaluate, is_luma, super_resolve
from innlab.sr.metrics import psnr, rgb_to_y, ssim
from innlab.sr.models import EDSR, SRCNN, ResidualBlock, edsr, srcnn

__all__ = [
    "EDSR",
    "SRCNN",
    "TEST_IMAGES",
    "TRAIN_IMAGES",
    "ResidualBlock",
    "SRPatches",
    "bicubic_down",
    "bicubic_up",
    "edsr",
    "evaluate",
    "is_luma",
    "load_image",
    "pair",
    "psnr",
    "rgb_to_y",
    "srcnn",
    "ssim",
    "super_resolve",
]
