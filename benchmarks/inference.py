"""Latency of exported models at several widths against the original model, interleaved."""

from __future__ import annotations

import torch
import torchvision

import inn
from benchmarks.common import interleaved, ratio_stats, summary

MODELS = ["resnet18", "mobilenet_v2"]
WIDTHS = [1.0, 0.8, 0.6, 0.4]


def _at_width(imodel: inn.IntegralModel, fraction: float) -> torch.nn.Module:
    widths = {g.name: max(1, round(fraction * g.full_size)) for g in imodel.resizable_groups}
    return imodel.resize(widths=widths).export().eval()


def run(smoke: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    results = []
    for name in ["mobilenet_v3_small"] if smoke else MODELS:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval()
        size = 32 if smoke else 224
        imodel = inn.convert(model, torch.randn(1, 3, size, size))
        exported = {f"{w:.0%}": _at_width(imodel, w) for w in WIDTHS}
        for batch in (1,) if smoke else (1, 32):
            x = torch.randn(batch, 3, size, size)
            fns = {"original": lambda m=model, x=x: m(x)}
            fns.update({k: (lambda m=m, x=x: m(x)) for k, m in exported.items()})
            with torch.no_grad():
                samples = interleaved(fns, repeats=2 if smoke else (15 if batch == 1 else 5))
            base = summary(samples["original"])["median"]
            for key in exported:
                results.append(
                    {
                        "model": name,
                        "batch": batch,
                        "width": key,
                        "parameters": sum(p.numel() for p in exported[key].parameters()),
                        "latency_s": summary(samples[key]),
                        "original_latency_s": base,
                        **ratio_stats(samples[key], samples["original"]),
                    }
                )
    return results


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | batch | width | parameters | latency (ms) | original (ms) | ratio (median, [min, max]) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['width']} | {r['parameters']:,} | "
            f"{1e3 * r['latency_s']['median']:.1f} | {1e3 * r['original_latency_s']:.1f} | "
            f"{r['ratio_median']:.2f} [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}] |"
        )
    return "\n".join(lines)
