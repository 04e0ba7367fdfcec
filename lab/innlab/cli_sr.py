"""``inn upscale`` and the super-resolution / reconstruction experiments of ``inn experiment``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from inn.cli import UsageError

__all__ = ["add_upscale_parser", "reconstruction_experiment", "sr_experiment"]

SR_MODELS = {4: "edsr", 3: "srcnn"}  # scale -> zoo network
TILE = 96  # low-resolution tile side for large images (bounded memory), with overlap
OVERLAP = 8


def sr_experiment(args: argparse.Namespace, command: str) -> int:
    from innlab.experiments import sr

    start = time.perf_counter()
    compressions = _floats(args.compressions, (0.0, 0.2, 0.4, 0.6))
    methods = tuple(args.methods.split(",")) if args.methods else sr.METHODS
    names = (args.model,) if args.model else ("srcnn", "edsr")
    rows = sr.run(names, compressions, methods, steps=args.steps)
    with_edsr = "edsr" in names  # Figure 7 and the crops are EDSR's
    curve = sr.widths_curve() if with_edsr else {}
    shown = sr.crops(steps=args.steps) if with_edsr else None
    out = Path(args.out or "out/sr")
    seconds = time.perf_counter() - start
    sr.save(rows, curve, shown, out, command, seconds)
    print(f"\n{(out / 'results.md').read_text()}")
    written = ["results.json", "results.md", "psnr.png", *(["crops.png"] if with_edsr else [])]
    print(f"written: {', '.join(str(out / f) for f in written)} ({seconds:.0f} s)")
    return 0


def reconstruction_experiment(args: argparse.Namespace, command: str) -> int:
    from innlab.experiments import reconstruction

    start = time.perf_counter()
    budgets = tuple(int(b) for b in _floats(args.budgets_reconstruction, (300, 600, 1200)))
    rows, pictures = reconstruction.run(budgets=budgets, steps=args.steps_reconstruction)
    out = Path(args.out or "out/reconstruction")
    seconds = time.perf_counter() - start
    reconstruction.save(rows, pictures, out, command, seconds)
    print(f"\n{(out / 'results.md').read_text()}")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'reconstruction.png'}")
    return 0


def _floats(text: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    if not text:
        return default
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{text!r} is not a comma-separated list of numbers") from None


def _read_image(path: Path) -> Any:
    """RGB ``(3, H, W)`` float tensor in [0, 1] from an image file."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise UsageError(f"no such image file: {str(path)!r}")
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(
            f"{str(path)!r} is not an image PIL can read (PNG, JPEG, BMP, TIFF...): {e}"
        ) from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0


def _tiled(model: Any, low: Any, scale: int) -> Any:
    """Super-resolve ``low`` in overlapping tiles (memory bounded by the tile, not the image)."""
    import torch

    from innlab.sr import super_resolve

    _, h, w = low.shape
    if h * w <= (2 * TILE) ** 2:
        return super_resolve(model, low, scale)
    out = torch.zeros(3, h * scale, w * scale)
    for top in range(0, h, TILE):
        for left in range(0, w, TILE):
            t0, l0 = max(top - OVERLAP, 0), max(left - OVERLAP, 0)
            t1, l1 = min(top + TILE + OVERLAP, h), min(left + TILE + OVERLAP, w)
            tile = super_resolve(model, low[:, t0:t1, l0:l1], scale)
            keep = tile[:, (top - t0) * scale :, (left - l0) * scale :]
            rows, cols = min(TILE, h - top) * scale, min(TILE, w - left) * scale
            out[:, top * scale : top * scale + rows, left * scale : left * scale + cols] = keep[
                :, :rows, :cols
            ]
    return out


def _upscale(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    import inn
    from inn.budget import count_parameters
    from innlab import zoo

    if args.scale not in SR_MODELS:
        raise UsageError(
            f"no model for scale {args.scale}: the zoo has x4 (EDSR) and x3 (SRCNN); "
            "use --scale 4 or --scale 3"
        )
    if not 0 <= args.compression < 1:
        raise UsageError(f"--compression must be in [0, 1), got {args.compression}")
    out = Path(args.output)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"):
        raise UsageError(f"-o {args.output!r}: give an image file name (.png, .jpg, ...)")
    low = _read_image(Path(args.image))
    name = SR_MODELS[args.scale]
    full = zoo.load_pretrained(name)
    if name == "edsr":  # its twin was trained for every width: no data or tuning needed
        imodel = zoo.load_integral(name)
        source = "EDSR trained with random widths (innlab.zoo.load_integral('edsr'))"
    else:
        imodel = inn.convert(full, zoo.example_input(name))
        source = "SRCNN converted to an INN (innlab.zoo.load_pretrained('srcnn'))"
    imodel.resize(compression=args.compression, sensitivity="uniform")
    model = imodel.export()
    start = time.perf_counter()
    with torch.no_grad():
        high = _tiled(model, low, args.scale)
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    pixels = (high.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(out)
    n, n_full = count_parameters(model), count_parameters(full)
    print(f"{source}, x{args.scale}")
    print(f"parameters: {n:,} of {n_full:,} ({1 - n / n_full:.1%} removed)")
    print(f"{low.shape[2]}x{low.shape[1]} -> {high.shape[2]}x{high.shape[1]} in {seconds:.2f} s; "
          f"written: {out}")  # fmt: skip
    return 0


def add_upscale_parser(sub: Any) -> None:
    upscale = sub.add_parser(
        "upscale", help="super-resolve an image with the zoo's EDSR (x4) or SRCNN (x3), pruned"
    )
    upscale.add_argument("image", help="an image file (PNG, JPEG, ...)")
    upscale.add_argument("--scale", type=int, default=4, help="4 (EDSR) or 3 (SRCNN)")
    upscale.add_argument(
        "--compression", type=float, default=0.0, help="fraction of parameters removed, [0, 1)"
    )
    upscale.add_argument("-o", "--output", default="upscaled.png", help="output image file")
    upscale.set_defaults(func=_upscale)
