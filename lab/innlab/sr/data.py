"""Natural images that ship inside installed packages, degraded as in the SR literature.

The stand-in for the 91-image set / DIV2K (training) and Set5 / Set14 / B100 (testing): 21 real
photographs and scans from scikit-image, scikit-learn, matplotlib and PyWavelets, split once
into :data:`TRAIN_IMAGES` and :data:`TEST_IMAGES` (no training ever sees a test image).
Low-resolution inputs are bicubic downsamplings (antialiased, like MATLAB's ``imresize``) of the
ground truth cropped to a multiple of the scale.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from inn import InnError
from innlab.sr.metrics import rgb_to_y

__all__ = [
    "TEST_IMAGES",
    "TRAIN_IMAGES",
    "SRPatches",
    "bicubic_down",
    "bicubic_up",
    "load_image",
    "pair",
]


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        return image[0] if name == "stereo_motorcycle" else image

    return load


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def _pywt(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import pywt.data

        return getattr(pywt.data, name)()

    return load


_SOURCES: dict[str, Callable[[], np.ndarray]] = {
    **{n: _skimage(n) for n in (
        "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
        "stereo_motorcycle", "camera", "brick", "grass", "gravel", "moon", "coins", "clock",
        "text", "page",
    )},
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    "grace_hopper": _grace_hopper,
    "aero": _pywt("aero"),
    "ascent": _pywt("ascent"),
}  # fmt: skip

TEST_IMAGES = (
    "astronaut", "chelsea", "china", "grace_hopper", "stereo_motorcycle", "camera", "coins",
    "ascent",
)  # fmt: skip
"""Eight test images (five colour, three grey), never used for training or calibration."""
TRAIN_IMAGES = tuple(n for n in _SOURCES if n not in TEST_IMAGES)
"""The other 13 (five colour, eight grey): training patches and calibration inputs."""


@functools.cache
def _load(name: str) -> np.ndarray:
    if name not in _SOURCES:
        raise InnError(f"unknown image {name!r}; known: {sorted(_SOURCES)}")
    try:
        image = _SOURCES[name]()
    except ImportError as e:
        raise InnError(
            f"image {name!r} needs {e.name!r}: pip install scikit-image scikit-learn matplotlib "
            "PyWavelets (the 'experiments' extra)"
        ) from e
    image = np.asarray(image)
    if image.ndim == 2:  # grey: the same value in R, G and B
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def load_image(name: str) -> Tensor:
    """Image ``name`` as a float32 RGB tensor ``(3, H, W)`` in [0, 1] (cached)."""
    return torch.from_numpy(_load(name).copy()).permute(2, 0, 1).float() / 255.0


def bicubic_down(image: Tensor, scale: int) -> Tensor:
    """``(..., C, H, W)`` -> ``(..., C, H // scale, W // scale)``: antialiased bicubic, clipped
    to [0, 1]; ``H`` and ``W`` must be multiples of ``scale``."""
    h, w = image.shape[-2:]
    if h % scale or w % scale:
        raise InnError(f"crop the image ({h}x{w}) to a multiple of the scale {scale} first")
    batch = image.reshape(-1, *image.shape[-3:])
    out = F.interpolate(batch, size=(h // scale, w // scale), mode="bicubic", antialias=True,
                        align_corners=False)  # fmt: skip
    return out.clamp(0, 1).reshape(*image.shape[:-2], h // scale, w // scale)


def bicubic_up(image: Tensor, scale: int) -> Tensor:
    """``(..., C, h, w)`` -> ``(..., C, h * scale, w * scale)``: bicubic, clipped to [0, 1]."""
    batch = image.reshape(-1, *image.shape[-3:])
    out = F.interpolate(batch, scale_factor=scale, mode="bicubic", align_corners=False)
    return out.clamp(0, 1).reshape(*image.shape[:-2], *out.shape[-2:])


def pair(name: str, scale: int) -> tuple[Tensor, Tensor]:
    """``(low resolution (3, h, w), ground truth (3, h * scale, w * scale))`` of image ``name``,
    the ground truth cropped to a multiple of ``scale``."""
    hr = load_image(name)
    h, w = (n - n % scale for n in hr.shape[-2:])
    hr = hr[:, :h, :w]
    return bicubic_down(hr, scale), hr


class SRPatches(Dataset):
    """Random aligned patches of the training images, each under one of the 8 flips/rotations.

    Item ``i`` is fixed by ``(seed, i)`` alone (generated on access: no large arrays).

    Args:
        scale: the upscaling factor.
        patch: the low-resolution patch size (the ground truth is ``patch * scale``).
        length: number of items (patches) in the dataset.
        luma: SRCNN's task: input the bicubic-upscaled Y channel (``(1, P s, P s)``), target the
            Y channel; else RGB low resolution ``(3, P, P)`` -> RGB ``(3, P s, P s)``.
        images: names of the images to draw from (default :data:`TRAIN_IMAGES`).
    """

    def __init__(
        self, scale: int, patch: int = 24, length: int = 10_000, *, luma: bool = False,
        images: tuple[str, ...] = TRAIN_IMAGES, seed: int = 0,
    ) -> None:  # fmt: skip
        leaked = set(images) & set(TEST_IMAGES)
        if leaked:
            raise InnError(f"SRPatches: test images {sorted(leaked)} must not be trained on")
        self.scale, self.patch, self.length, self.luma, self.seed = scale, patch, length, luma, seed
        self.pairs = [pair(n, scale) for n in images]
        if luma:  # the input is the whole image upscaled, then cut: no patch-border effects
            self.pairs = [(rgb_to_y(bicubic_up(lr, scale)), rgb_to_y(hr)) for lr, hr in self.pairs]
        # images drawn in proportion to their area
        areas = torch.tensor([float(hr.shape[-1] * hr.shape[-2]) for _, hr in self.pairs])
        self.weights = areas / areas.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        k = int(torch.multinomial(self.weights, 1, generator=g))
        x, hr = self.pairs[k]
        s, p = self.scale, self.patch
        in_scale = s if not self.luma else 1  # where the input lives relative to the grid
        h, w = hr.shape[-2] // s, hr.shape[-1] // s
        top = int(torch.randint(0, h - p + 1, (1,), generator=g))
        left = int(torch.randint(0, w - p + 1, (1,), generator=g))
        a = s // in_scale
        x = x[:, top * a : (top + p) * a, left * a : (left + p) * a]
        y = hr[:, top * s : (top + p) * s, left * s : (left + p) * s]
        flip, turns = int(torch.randint(0, 2, (1,), generator=g)), int(
            torch.randint(0, 4, (1,), generator=g)
        )
        if flip:
            x, y = x.flip(-1), y.flip(-1)
        return torch.rot90(x, turns, (-2, -1)), torch.rot90(y, turns, (-2, -1))
