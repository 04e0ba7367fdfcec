"""Latency of exported (and unexported) models at several widths against the original, interleaved.

Two references: the original model as given, and the same model with its BatchNorms folded by
``torch.fx.experimental.optimization.fuse`` (independent of ``inn``). An exported model has its
BatchNorms folded too, so at full width it must cost what the folded original costs (ratio 1.00);
against the unfolded original it is faster by whatever folding saves. The integral model itself
(not exported, eval mode) is timed too: it caches its sampled weights, so it must cost about what
its export costs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torchvision
from torch.fx.experimental.optimization import fuse

import inn
from benchmarks.common import interleaved, ratio_stats, summary

MODELS = ["resnet18", "mobilenet_v2"]
WIDTHS = [1.0, 0.8, 0.6, 0.4]


def _at_width(imodel: inn.IntegralModel, fraction: float) -> inn.IntegralModel:
    return copy.deepcopy(imodel).resize(widths=inn.train.uniform_widths(imodel, fraction)).eval()


def _devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def _timed(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """A call of ``model(x)`` that returns only once the device has finished it."""
    if x.device.type == "cuda":
        return lambda: (model(x), torch.cuda.synchronize())
    return lambda: model(x)


def run(smoke: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    results = []
    for name in ["mobilenet_v3_small"] if smoke else MODELS:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval()
        size = 32 if smoke else 224
        imodel = inn.convert(model, torch.randn(1, 3, size, size))
        references = {"original": model, "original, BN folded": fuse(model).eval()}
        integral = {f"{w:.0%}": _at_width(imodel, w) for w in WIDTHS}
        exported = {k: m.export().eval() for k, m in integral.items()}
        for device in _devices():
            models = {k: m.to(device) for k, m in {**references, **exported}.items()}
            models.update({f"integral {k}": m.to(device) for k, m in integral.items()})
            for batch in (1,) if smoke else (1, 32):
                x = torch.randn(batch, 3, size, size, device=device)
                fns = {k: _timed(m, x) for k, m in models.items()}
                with torch.no_grad():
                    samples = interleaved(fns, repeats=2 if smoke else (15 if batch == 1 else 5))
                for key in exported:
                    results.append(
                        {
                            "model": name,
                            "device": device,
                            "batch": batch,
                            "width": key,
                            "parameters": sum(p.numel() for p in exported[key].parameters()),
                            "latency_s": summary(samples[key]),
                            "integral_latency_s": summary(samples[f"integral {key}"]),
                            "original_latency_s": summary(samples["original"])["median"],
                            "folded_latency_s": summary(samples["original, BN folded"])["median"],
                            "vs_original": ratio_stats(samples[key], samples["original"]),
                            "vs_folded": ratio_stats(samples[key], samples["original, BN folded"]),
                            "integral_vs_exported": ratio_stats(
                                samples[f"integral {key}"], samples[key]
                            ),
                        }
                    )
    return results


def _ratio(stats: dict[str, float]) -> str:
    return f"{stats['ratio_median']:.2f} [{stats['ratio_min']:.2f}, {stats['ratio_max']:.2f}]"


def markdown(results: list[dict]) -> str:
    lines = [
        "Ratios: median and [min, max] over interleaved rounds of (exported latency / reference "
        "latency).",
        "",
        "| model | device | batch | width | parameters | exported (ms) | original (ms) "
        "| original, BN folded (ms) | exported / original | exported / original, BN folded "
        "| integral model (ms) | integral model / exported |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['device']} | {r['batch']} | {r['width']} | {r['parameters']:,} | "
            f"{1e3 * r['latency_s']['median']:.1f} | {1e3 * r['original_latency_s']:.1f} | "
            f"{1e3 * r['folded_latency_s']:.1f} | {_ratio(r['vs_original'])} | {_ratio(r['vs_folded'])} | "
            f"{1e3 * r['integral_latency_s']['median']:.1f} | {_ratio(r['integral_vs_exported'])} |"
        )
    return "\n".join(lines)
