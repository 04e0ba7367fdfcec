"""Which channel counts does this CPU run fast? Seconds per multiply-accumulate of one
convolution (1x1, 3x3, depthwise 3x3) at channel counts on and off multiples of the vector
width, timed interleaved: the measurement behind the CPU's default ``round_to``
(``inn.budget.device_round_to``).

oneDNN, which runs PyTorch's CPU convolutions, keeps channels in blocks of the vector width
(16 floats with AVX-512, 8 with AVX2), so a count off the block pads the last one.
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from benchmarks.common import interleaved, summary

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


def run(smoke: bool = False) -> list[dict]:
    torch.set_num_threads(2)
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


def markdown(rows: list[dict]) -> str:
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
