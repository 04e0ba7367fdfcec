"""``--calib``: calibration data for the commands, from a folder of images or a tensor file.

A folder is read recursively: torchvision's ``ImageFolder`` layout (one subfolder per class)
and a flat folder of image files read the same way, since the labels are not used (calibration
matches the original network's outputs). A ``.pt`` / ``.pth`` file holds a tensor of inputs,
or ``(inputs, targets)``, or ``{"inputs": ...}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inn.cli.models import UsageError, positive_int
from inn.errors import first_line

__all__ = ["IMAGE_SUFFIXES", "add_calib_arguments", "load_calibration"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BATCH_SIZE = 32


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated numbers") from None


def add_calib_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "calibration data (with it, widths are chosen on real inputs and the statistics and "
        "biases repaired: much more accurate than without data)"
    )
    group.add_argument(
        "--calib", metavar="PATH",
        help="a folder of images (ImageFolder layout or plain files, read recursively) or a "
        ".pt file with a tensor of inputs (N, C, H, W)",
    )  # fmt: skip
    group.add_argument(
        "--calib-size", type=positive_int, default=256, metavar="N",
        help="images used from --calib",
    )  # fmt: skip
    group.add_argument(
        "--resize", type=positive_int, metavar="PIXELS",
        help="images: shorter side resized to this before the centre crop to --input-shape "
        "(default: the crop's size / 0.875, as torchvision's ImageNet models)",
    )  # fmt: skip
    group.add_argument(
        "--mean", type=_floats, default=IMAGENET_MEAN, metavar="M,M,M",
        help="images: per-channel mean subtracted after scaling to [0, 1] (default: ImageNet's)",
    )  # fmt: skip
    group.add_argument(
        "--std", type=_floats, default=IMAGENET_STD, metavar="S,S,S",
        help="images: per-channel standard deviation divided by (default: ImageNet's)",
    )  # fmt: skip


def load_calibration(args: argparse.Namespace, shape: tuple[int, ...]) -> list[Any] | None:
    """Batches of ``--calib`` inputs shaped like ``shape[1:]`` (``None`` without ``--calib``)."""
    if args.calib is None:
        return None
    path = Path(args.calib)
    if not path.exists():
        raise UsageError(f"--calib {args.calib!r}: no such file or folder")
    inputs = (_read_images if path.is_dir() else _read_tensor)(path, args, shape)
    return list(inputs.split(BATCH_SIZE))


def _read_tensor(path: Path, args: argparse.Namespace, shape: tuple[int, ...]) -> Any:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = first_line(error) or type(error).__name__
        raise UsageError(
            f"--calib {str(path)!r}: not a tensor file torch.load can read ({reason[:120]}); "
            "give a folder of images or torch.save(inputs, path)"
        ) from None
    if isinstance(data, dict):
        data = data.get("inputs", data.get("images"))
    elif isinstance(data, (tuple, list)) and data:
        data = data[0]
    if not isinstance(data, torch.Tensor):
        raise UsageError(
            f"--calib {str(path)!r} holds no tensor of inputs: save a tensor, (inputs, targets) "
            'or {"inputs": tensor}'
        )
    if tuple(data.shape[1:]) != tuple(shape[1:]):
        raise UsageError(
            f"--calib {str(path)!r}: inputs of shape {tuple(data.shape)} do not match "
            f"--input-shape {','.join(map(str, shape))} (one input is {tuple(shape[1:])})"
        )
    return data[: args.calib_size].float()


def _read_images(folder: Path, args: argparse.Namespace, shape: tuple[int, ...]) -> Any:
    import random

    import torch

    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with torchvision
        raise UsageError("--calib with images needs pillow: pip install pillow") from None
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(
            f"--calib {str(folder)!r}: no image files ({', '.join(IMAGE_SUFFIXES)}) in it or "
            "its subfolders"
        )
    if len(shape) != 4:
        raise UsageError(f"--calib with images needs --input-shape N,C,H,W, got {shape}")
    channels, height, width = shape[1:]
    if len(args.mean) != channels or len(args.std) != channels:
        raise UsageError(
            f"--mean and --std need {channels} values (the channels of --input-shape), got "
            f"{len(args.mean)} and {len(args.std)}"
        )
    if len(files) > args.calib_size:  # a seeded sample, so every class of an ImageFolder shows
        files = sorted(random.Random(0).sample(files, args.calib_size))
    side = args.resize or round(max(height, width) / 0.875)
    mean = torch.tensor(args.mean).view(-1, 1, 1)
    std = torch.tensor(args.std).view(-1, 1, 1)
    images = []
    for file in _progress(files):
        try:
            with Image.open(file) as image:
                image = image.convert("L" if channels == 1 else "RGB")
                images.append(_centre_crop(image, side, height, width))
        except OSError as error:
            raise UsageError(f"--calib: cannot read image {str(file)!r} ({error})") from None
    pixels = torch.stack([_as_tensor(image, channels) for image in images])
    return (pixels - mean) / std


def _centre_crop(image: Any, side: int, height: int, width: int) -> Any:
    """The shorter side resized to ``side``, then the central ``height x width``."""
    w, h = image.size
    scale = side / min(w, h)
    image = image.resize((max(width, round(w * scale)), max(height, round(h * scale))))
    w, h = image.size
    left, top = (w - width) // 2, (h - height) // 2
    return image.crop((left, top, left + width, top + height))


def _as_tensor(image: Any, channels: int) -> Any:
    import numpy as np
    import torch

    array = np.asarray(image, dtype=np.float32) / 255.0
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def _progress(files: list[Path]) -> Any:
    from tqdm.auto import tqdm

    return tqdm(files, desc="reading calibration images", unit="image", leave=False)
