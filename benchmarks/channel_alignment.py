"""Which channel counts does this CPU run fast? Seconds per multiply-accumulate of one
convolution (1x1, 3x3, depthwise 3x3) at channel counts on and off multiples of 16, and whole
plans of torchvision's MobileNetV2 (224 x 224, MAC budgets) with every width rounded to 16
or not, timed interleaved: the measurement behind the CPU's default ``round_to``
(``inn.budget.device_round_to``).

oneDNN, which runs PyTorch's CPU convolutions, keeps channels in blocks of the vector width
(16 floats with AVX-512, 8 with AVX2), so a count off the block pads the last one.
"""

from __future__ import annotations

import statistics

import torch
import torchvision
from torch import nn

import inn
from benchmarks.common import interleaved, ratio_stats, summary

ALIGNED = (64, 96, 128, 160, 192, 256)
OFFSETS = (0, -4, -8)  # -8: a multiple of 8 that is not one of 16
SIZE = 28


def _conv(kind: str, channels: int) -> nn.Conv2d:
    if kind == "1x1":
        return nn.Conv2d(channels, channels, 1)
    if kind == "3x3":
        return nn.Conv2d(channels, channels, 3, padding=1)
    return nn.Conv2d(channels, channels, 3, padding=1, groups=channels)


def _macs(conv: nn.Conv2d, batch: int) -> int:
    return conv.weight.numel() * SIZE * SIZE * batch


def run(smoke: bool = False) -> dict[str, list[dict]]:
    torch.set_num_threads(2)
    return {"convolutions": _convolutions(smoke), "plans": _plans(smoke)}


def _convolutions(smoke: bool) -> list[dict]:
    rows = []
    kinds = ("1x1",) if smoke else ("1x1", "3x3", "depthwise 3x3")
    for kind in kinds:
        for batch in (1,) if smoke else (1, 32):
            counts = [c + o for c in ALIGNED[: 1 if smoke else None] for o in OFFSETS]
            convs = {c: _conv(kind, c).eval() for c in counts}
            inputs = {c: torch.randn(batch, c, SIZE, SIZE) for c in counts}
            fns = {c: (lambda m=m, x=inputs[c]: m(x)) for c, m in convs.items()}
            with torch.no_grad():
                samples = interleaved(fns, repeats=2 if smoke else (15 if batch == 1 else 5))
            per_mac = {c: statistics.median(s) / _macs(convs[c], batch) for c, s in samples.items()}
            for offset in OFFSETS[1:]:
                ratios = [per_mac[c + offset] / per_mac[c] for c in ALIGNED if c in per_mac]
                rows.append({
                    "kind": kind, "batch": batch, "offset": offset,
                    "per_mac_ratio": summary(ratios),
                    "channels": [c + offset for c in ALIGNED if c in per_mac],
                })  # fmt: skip
    return rows


def _plans(smoke: bool) -> list[dict]:
    """MobileNetV2 exported at MAC budgets, widths rounded to 1 and to 16, over its full
    width's export (BN folded alike), interleaved."""
    torch.manual_seed(0)
    size = 32 if smoke else 224
    model = torchvision.models.mobilenet_v2(weights=None).eval()
    imodel = inn.convert(model, torch.randn(1, 3, size, size))
    models = {"full": imodel.export().eval()}
    fractions = (0.5,) if smoke else (0.8, 0.6, 0.4)
    for fraction in fractions:
        for round_to in (1, 16):
            plan = imodel.plan({"macs": fraction}, sensitivity="uniform" if smoke else "auto",
                               round_to=round_to)  # fmt: skip
            with imodel.widths_kept():
                models[fraction, round_to] = imodel.resize(widths=plan.widths).export().eval()
    rows = []
    for batch in (1,) if smoke else (1, 32):
        x = torch.randn(batch, 3, size, size)
        fns = {k: (lambda m=m, x=x: m(x)) for k, m in models.items()}
        with torch.no_grad():
            samples = interleaved(fns, repeats=2 if smoke else (15 if batch == 1 else 4))
        for fraction in fractions:
            rows.append({
                "batch": batch, "mac_budget": fraction,
                **{f"round_to_{r}": ratio_stats(samples[fraction, r], samples["full"])
                   for r in (1, 16)},
            })  # fmt: skip
    return rows


def markdown(report: dict[str, list[dict]]) -> str:
    return "\n\n".join([_convolution_table(report["convolutions"]), _plan_table(report["plans"])])


def _plan_table(rows: list[dict]) -> str:
    lines = [
        "torchvision MobileNetV2 (224 x 224, untrained weights) exported at MAC budgets (inn's "
        "default plan without data), every width rounded to 1 or to 16: latency over the full "
        "width's export, median [min, max] over interleaved rounds.",
        "",
        "| batch | MAC budget | round_to=1 | round_to=16 |",
        "|---:|---:|---|---|",
    ]
    for r in rows:
        cells = [
            f"{s['ratio_median']:.2f} [{s['ratio_min']:.2f}, {s['ratio_max']:.2f}]"
            for s in (r["round_to_1"], r["round_to_16"])
        ]
        lines.append(f"| {r['batch']} | {r['mac_budget']:.0%} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _convolution_table(rows: list[dict]) -> str:
    lines = [
        f"Seconds per MAC of a convolution (C -> C channels, {SIZE} x {SIZE}) at C off a "
        "multiple of 16 over the same at the multiple of 16 above it, median [min, max] over C "
        f"= {', '.join(str(c) for c in ALIGNED)} (minus the offset). Above 1: the count off the "
        "multiple is slower per MAC.",
        "",
        "| convolution | batch | channels | per-MAC time / at the multiple of 16 |",
        "|---|---:|---|---|",
    ]
    for r in rows:
        s = r["per_mac_ratio"]
        which = "multiple of 16 minus 4" if r["offset"] == -4 else "multiple of 8, not of 16"
        lines.append(
            f"| {r['kind']} | {r['batch']} | {which} | "
            f"{s['median']:.2f} [{s['min']:.2f}, {s['max']:.2f}] |"
        )
    return "\n".join(lines)
