"""Super-resolution without fine-tuning (the paper's Figures 1d and 7) on our test images.

* PSNR / SSIM against compression for SRCNN x3 and EDSR x4, every method at the same widths
  (each group keeps the same fraction, the paper's protocol):

  - ``inn+tune``: convert, resize, tune the partition points with a label-free loss (the
    full-width INN's output as target, MSE) on calibration inputs (Pipeline B);
  - ``inn``: convert and resize, uniform partition, no data;
  - ``l1``: keep the channels (for a PixelShuffle: whole sub-pixel blocks) of largest kernel L1
    norm; ``l1+calib``: then train the biases to match the unpruned network's outputs on the
    same calibration inputs, with the same step budget.
* Figure 7: EDSR's twin trained with random widths (``innlab.zoo.load_integral("edsr")``) against
  the discrete EDSR pruned by L1 and the converted EDSR resized without training, PSNR against
  the width kept (40-100 %).
* A picture: one test crop at 40 % compression.

Bicubic interpolation is the reference row. Only the public API is used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import inn
from inn import InnError
from inn.budget import count_parameters
from innlab import baselines, zoo
from innlab.sr import TEST_IMAGES, SRPatches, bicubic_up, evaluate, pair, psnr, super_resolve

__all__ = [
    "METHODS", "Row", "calibration_inputs", "crops", "markdown", "plot_crops", "run", "save",
    "widths_curve",
]  # fmt: skip

METHODS = ("inn+tune", "inn", "l1", "l1+calib")
SCALES = {"srcnn": 3, "edsr": 4}
CROP = ("chelsea", 12, 34, 48)  # image, top and left in low-resolution pixels, size


@dataclass(frozen=True)
class Row:
    model: str
    method: str
    compression: float  # the fraction of parameters removed (0 for the unpruned network)
    parameters: int
    psnr: float
    ssim: float


def calibration_inputs(name: str, count: int = 64, batch: int = 16, seed: int = 1) -> list[Tensor]:
    """``count`` low-resolution training patches (inputs only: the loss is label-free)."""
    luma = name == "srcnn"
    data = SRPatches(SCALES[name], 16 if luma else 24, count, luma=luma, seed=seed)
    xs = torch.stack([data[i][0] for i in range(count)])
    return list(xs.split(batch))


def run(
    names: Sequence[str] = ("srcnn", "edsr"),
    compressions: Sequence[float] = (0.0, 0.2, 0.4, 0.6),
    methods: Sequence[str] = METHODS,
    steps: int = 100,
    progress: bool = True,
    images: Sequence[str] = TEST_IMAGES,
) -> list[Row]:
    """Every method at every compression for each zoo SR network, evaluated on ``images``;
    ``steps`` is the budget of partition tuning and of bias calibration alike."""
    unknown = [n for n in names if n not in SCALES]
    if unknown:
        raise InnError(f"no super-resolution network {unknown}; the zoo has {sorted(SCALES)}")
    return [
        r for name in names
        for r in _run_model(name, compressions, methods, steps, progress, images)
    ]  # fmt: skip


def _run_model(
    name: str, compressions: Sequence[float], methods: Sequence[str], steps: int, progress: bool,
    images: Sequence[str],
) -> list[Row]:  # fmt: skip
    model, scale = zoo.load_pretrained(name), SCALES[name]
    calib = calibration_inputs(name)
    example = calib[0][:1]

    def row(method: str, c: float, small: nn.Module | str) -> Row:
        quality = evaluate(small, scale, images)
        size = 0 if isinstance(small, str) else count_parameters(small)
        return Row(name, method, c, size, quality["psnr"], quality["ssim"])

    rows = [row("bicubic", 0.0, "bicubic"), row("unpruned", 0.0, model)]
    jobs = [(m, c) for c in compressions if c > 0 for m in methods]
    bar = tqdm(jobs, desc=f"{name}: methods x compressions", disable=not progress)
    for method, c in bar:
        bar.set_postfix(method=method, compression=c)
        if method.startswith("inn"):
            imodel = inn.convert(model, example)
            imodel.resize(compression=c, sensitivity="uniform")
            if method == "inn+tune":
                inn.tune_partition(imodel, calib, steps=steps, loss="mse")
            rows.append(row(method, c, imodel.export()))
            continue
        widths = baselines.plan_widths(model, example, c, sensitivity="uniform")
        small = baselines.prune_l1(model, example, widths=widths)
        if method == "l1+calib":
            inn.recover.calibrate_biases(small, model, calib, steps=steps, loss="mse")
        rows.append(row(method, c, small))
    return rows


def widths_curve(fractions: Sequence[float] = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                 progress: bool = True, images: Sequence[str] = TEST_IMAGES,
                 ) -> dict[str, dict[float, float]]:  # fmt: skip
    """Figure 7: PSNR of EDSR x4 at each width fraction (every group alike): the random-width
    twin, the converted EDSR (no training) and the discrete EDSR pruned by L1."""
    model, twin = zoo.load_pretrained("edsr"), zoo.load_integral("edsr")
    example = zoo.example_input("edsr")
    converted = inn.convert(model, example)
    out: dict[str, dict[float, float]] = {"inn trained with random widths": {},
                                          "inn converted": {}, "l1": {}}  # fmt: skip
    for f in tqdm(fractions, desc="edsr widths", disable=not progress):
        for label, imodel in (("inn trained with random widths", twin), ("inn converted", converted)):
            imodel.resize(widths=inn.train.uniform_widths(imodel, f))
            out[label][f] = evaluate(imodel.export(), 4, images)["psnr"]
        widths = inn.train.uniform_widths(converted, f)
        small = baselines.prune_l1(model, example, widths=widths)
        out["l1"][f] = evaluate(small, 4, images)["psnr"]
    return out


def crops(compression: float = 0.4, steps: int = 100) -> dict[str, tuple[Tensor, float]]:
    """A crop of a test image: bicubic, EDSR pruned by L1, EDSR as INN + tuning at
    ``compression``, the unpruned EDSR and the ground truth, each with its PSNR on the crop."""
    name, top, left, size = CROP
    low, hr = pair(name, 4)
    low = low[:, top : top + size, left : left + size]
    hr = hr[:, 4 * top : 4 * (top + size), 4 * left : 4 * (left + size)]
    model = zoo.load_pretrained("edsr")
    calib = calibration_inputs("edsr")
    imodel = inn.convert(model, calib[0][:1])
    imodel.resize(compression=compression, sensitivity="uniform")
    inn.tune_partition(imodel, calib, steps=steps, loss="mse")
    widths = baselines.plan_widths(model, calib[0][:1], compression, sensitivity="uniform")
    outputs = {
        "bicubic": bicubic_up(low, 4),
        f"L1 pruned, -{compression:.0%}": super_resolve(
            baselines.prune_l1(model, calib[0][:1], widths=widths), low, 4),
        f"INN + tuning, -{compression:.0%}": super_resolve(imodel.export(), low, 4),
        "EDSR (unpruned)": super_resolve(model, low, 4),
    }  # fmt: skip
    shown = {k: (v, psnr(v, hr, 4)) for k, v in outputs.items()}
    shown["ground truth"] = (hr, float("inf"))
    return shown


def markdown(rows: Sequence[Row]) -> str:
    lines = []
    for name in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == name]
        ref = {r.method: r for r in mine if r.compression == 0}
        compressions = sorted({r.compression for r in mine if r.compression > 0})
        lines += [f"**{name}** x{SCALES[name]}: PSNR (dB) / SSIM on the Y channel; bicubic "
                  f"{ref['bicubic'].psnr:.2f} / {ref['bicubic'].ssim:.4f}, unpruned "
                  f"{ref['unpruned'].psnr:.2f} / {ref['unpruned'].ssim:.4f}", ""]  # fmt: skip
        lines.append("| method | " + " | ".join(f"-{c:.0%} params" for c in compressions) + " |")
        lines.append("|---" * (len(compressions) + 1) + "|")
        for method in dict.fromkeys(r.method for r in mine if r.compression > 0):
            cells = [next((f"{r.psnr:.2f} / {r.ssim:.3f}" for r in mine
                           if r.method == method and r.compression == c), "")
                     for c in compressions]  # fmt: skip
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def save(rows: Sequence[Row], curve: dict[str, dict[float, float]],
         shown: dict[str, tuple[Tensor, float]] | None, out: Path, command: str,
         seconds: float) -> None:  # fmt: skip
    """JSON, markdown, ``psnr.png`` and (given ``shown``) ``crops.png``; without EDSR, ``curve``
    and ``shown`` may be empty / None."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    data = {"command": command, "seconds": round(seconds, 1), "rows": [asdict(r) for r in rows],
            "edsr_psnr_at_width": {k: {str(f): v for f, v in c.items()} for k, c in curve.items()}}
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    text = f"# Super-resolution without fine-tuning\n\n{markdown(rows)}\n"
    if curve:
        fractions = next(iter(curve.values())).keys()
        text += (
            "**EDSR x4, PSNR (dB) at each width kept** (every group alike)\n\n"
            "| model | " + " | ".join(f"{f:.0%}" for f in fractions) + " |\n"
            + "|---" * (len(fractions) + 1) + "|\n"
            + "\n".join(f"| {label} | " + " | ".join(f"{v:.2f}" for v in c.values()) + " |"
                        for label, c in curve.items()) + "\n"
        )  # fmt: skip
    (out / "results.md").write_text(f"{text}\n`{command}` ({seconds:.0f} s)\n")

    names = list(dict.fromkeys(r.model for r in rows))
    panels = len(names) + bool(curve)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        mine = [r for r in rows if r.model == name]
        ref = {r.method: r.psnr for r in mine if r.compression == 0}
        for method in dict.fromkeys(r.method for r in mine if r.compression > 0):
            pts = sorted((r.compression, r.psnr) for r in mine if r.method == method)
            xs, ys = zip(*[(0.0, ref["unpruned"]), *pts], strict=True)
            ax.plot([100 * x for x in xs], ys, marker="o", label=method)
        ax.axhline(ref["bicubic"], color="gray", ls="--", label="bicubic")
        ax.set(title=f"{name} x{SCALES[name]} (no fine-tuning)", xlabel="parameters removed (%)",
               ylabel="PSNR (dB), Y channel")  # fmt: skip
        ax.legend(fontsize=8)
    if curve:
        ax = axes[0, -1]
        for label, c in curve.items():
            ax.plot([100 * f for f in c], list(c.values()), marker="o", label=label)
        bicubic = [r.psnr for r in rows if r.model == "edsr" and r.method == "bicubic"]
        if bicubic:
            ax.axhline(bicubic[0], color="gray", ls="--", label="bicubic")
        ax.set(title="EDSR x4 at each width (Figure 7)", xlabel="width kept (%)",
               ylabel="PSNR (dB)")  # fmt: skip
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "psnr.png", dpi=110)
    plt.close(fig)
    if shown:
        plot_crops(shown, out / "crops.png")


def plot_crops(shown: dict[str, tuple[Tensor, float]], path: Path) -> None:
    """The crops of :func:`crops` side by side, each titled with its PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shown), figsize=(3 * len(shown), 3.6))
    for ax, (label, (picture, value)) in zip(axes, shown.items(), strict=True):
        ax.imshow(picture.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(label if value == float("inf") else f"{label}\n{value:.2f} dB", fontsize=9)
        ax.axis("off")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.84, wspace=0.04)
    fig.savefig(path, dpi=110)
    plt.close(fig)
