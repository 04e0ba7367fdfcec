"""``inn upscale``'s work: EDSR x4 on a 256x256 image, exported at 60 % and other widths against
the full model, interleaved. ``inn upscale --compression`` plans widths to the parameter count
(``sensitivity="uniform"``), which keeps the upsampler wider than the body; the last row halves
every group.

The models are the committed zoo EDSR and its random-width twin (what ``inn upscale`` runs);
with ``smoke`` a freshly initialised EDSR on a 32x32 image (no checkpoint needed).
"""

from __future__ import annotations

import torch

import inn
from benchmarks.common import interleaved, ratio_stats, summary
from inn.budget import count_macs, count_parameters
from innlab import zoo

FRACTIONS = {"60 % params": 0.4, "80 % params": 0.2}  # label -> compression


def run(smoke: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    size = 32 if smoke else 256
    if smoke:
        torch.manual_seed(0)
        full = zoo.edsr().eval()
        twin = inn.convert(full, zoo.example_input("edsr"))
    else:
        full, twin = zoo.load_pretrained("edsr"), zoo.load_integral("edsr")
    models = {"full": full}
    for label, compression in FRACTIONS.items():
        twin.resize(compression=compression, sensitivity="uniform")
        models[label] = twin.export().eval()
    twin.resize(widths=inn.train.uniform_widths(twin, 0.5))
    models["50 % width, every group"] = twin.export().eval()
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        samples = interleaved({k: (lambda m=m: m(x)) for k, m in models.items()},
                              repeats=2 if smoke else 7)  # fmt: skip
    params = {k: count_parameters(m) for k, m in models.items()}
    macs = {k: count_macs(m, x) for k, m in models.items()}
    return [
        {
            "model": "edsr x4",
            "input": f"{size}x{size}",
            "width": key,
            "parameters": params[key],
            "parameter_ratio": params[key] / params["full"],
            "mac_ratio": macs[key] / macs["full"],
            "latency_s": summary(samples[key]),
            "vs_full": ratio_stats(samples[key], samples["full"]),
        }
        for key in models
    ]


def markdown(results: list[dict]) -> str:
    lines = [
        "EDSR x4 (exported from the random-width twin) against the full EDSR, interleaved rounds; "
        "time ratio: median [min, max].",
        "",
        "| input | model | parameters | params ratio | MACs ratio | time (s) | time ratio |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        v = r["vs_full"]
        lines.append(
            f"| {r['input']} | {r['width']} | {r['parameters']:,} | {r['parameter_ratio']:.2f} | "
            f"{r['mac_ratio']:.2f} | {r['latency_s']['median']:.3f} | {v['ratio_median']:.2f} "
            f"[{v['ratio_min']:.2f}, {v['ratio_max']:.2f}] |"
        )
    return "\n".join(lines)
