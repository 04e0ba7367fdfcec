"""Conversion cost per torchvision model: wall time split by stage, relative to one forward pass,
and the resident memory it adds at its peak (a fresh process per model)."""

from __future__ import annotations

import multiprocessing as mp
import time

import torch
import torchvision

import inn
from benchmarks.common import memory_mb, reset_peak_memory, summary

MODELS = [
    "resnet18",
    "resnet50",
    "resnet101",
    "mobilenet_v2",
    "efficientnet_b0",
    "densenet121",
    "vgg16_bn",
]
SMOKE_MODELS = ["mobilenet_v3_small"]


def build(name: str) -> torch.nn.Module:
    """A torchvision model or ``timm:NAME``, random weights."""
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], pretrained=False).eval()
    return torchvision.models.get_model(name, weights=None).eval()


def _one(name: str, size: int, queue: mp.Queue) -> None:
    try:
        _measure(name, size, queue)
    except Exception as error:  # reported in the table instead of hanging the parent
        queue.put({"model": name, "error": f"{type(error).__name__}: {error}"[:300]})


def _measure(name: str, size: int, queue: mp.Queue) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build(name)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        model(x)
        forwards = []
        for _ in range(3):
            start = time.perf_counter()
            model(x)
            forwards.append(time.perf_counter() - start)
    reset_peak_memory()
    before = memory_mb()["rss"]
    start = time.perf_counter()
    imodel = inn.convert(model, x)
    total = time.perf_counter() - start
    peak = memory_mb()["peak"]
    forward = summary(forwards)["median"]
    full = imodel.num_parameters()
    imodel.resize(widths={g.name: max(1, g.full_size // 2) for g in imodel.resizable_groups})
    queue.put(
        {
            "coverage": imodel.coverage().share,
            "parameters_at_half_width": imodel.num_parameters() / full,
            "model": name,
            "input": [1, 3, size, size],
            "convert_s": total,
            "stages_s": imodel.report.seconds,
            "forward_s": forward,
            "convert_over_forward": total / forward,
            "groups": len(imodel.groups),
            "resizable_groups": len(imodel.resizable_groups),
            "rss_before_convert_mb": before,
            "peak_rss_during_convert_mb": peak,
            "convert_extra_peak_mb": peak - before,
            "model_parameters_mb": sum(p.numel() * p.element_size() for p in model.parameters())
            / 2**20,
        }
    )


def run(smoke: bool = False, models: list[str] | None = None) -> list[dict]:
    results = []
    ctx = mp.get_context("spawn")
    for name in models or (SMOKE_MODELS if smoke else MODELS):
        queue = ctx.Queue()
        proc = ctx.Process(target=_one, args=(name, 32 if smoke else 224, queue))
        proc.start()
        results.append(queue.get(timeout=1800))
        proc.join()
    return results


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | convert (s) | trace | fold BN | analyse | permute | (distances | order) "
        "| initialise | forward (s) "
        "| convert / forward | model (MB) | RSS before (MB) | peak added (MB) | resizable groups |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | refused: {r['error']} |" + "|" * 14)
            continue
        s = r["stages_s"]
        lines.append(
            f"| {r['model']} | {r['convert_s']:.2f} | {s['trace']:.2f} | {s['fold']:.2f} | "
            f"{s['analyse']:.2f} | {s['permute']:.2f} | {s['distances']:.2f} | {s['order']:.2f} | "
            f"{s['initialise']:.2f} | {r['forward_s']:.3f} | "
            f"{r['convert_over_forward']:.0f} | "
            f"{r['model_parameters_mb']:.0f} | {r['rss_before_convert_mb']:.0f} | "
            f"{r['convert_extra_peak_mb']:.0f} | {r['resizable_groups']}/{r['groups']} |"
        )
    return "\n".join(lines)
