"""Conversion cost per torchvision model: wall time split by stage, relative to one forward pass,
and the peak resident memory of a fresh process doing it."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time

import torch
import torchvision

import inn
from benchmarks.common import summary

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


def _one(name: str, size: int, queue: mp.Queue) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        model(x)
        forwards = []
        for _ in range(3):
            start = time.perf_counter()
            model(x)
            forwards.append(time.perf_counter() - start)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    imodel = inn.convert(model, x)
    total = time.perf_counter() - start
    forward = summary(forwards)["median"]
    queue.put(
        {
            "model": name,
            "input": [1, 3, size, size],
            "convert_s": total,
            "stages_s": imodel.report.seconds,
            "forward_s": forward,
            "convert_over_forward": total / forward,
            "groups": len(imodel.groups),
            "resizable_groups": len(imodel.resizable_groups),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_convert_mb": rss_before / 1024,
        }
    )


def run(smoke: bool = False) -> list[dict]:
    results = []
    ctx = mp.get_context("spawn")
    for name in SMOKE_MODELS if smoke else MODELS:
        queue = ctx.Queue()
        proc = ctx.Process(target=_one, args=(name, 32 if smoke else 224, queue))
        proc.start()
        results.append(queue.get(timeout=1800))
        proc.join()
    return results


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | convert (s) | trace | fold+analyse | permute | initialise | forward (s) "
        "| convert / forward | peak RSS (MB) | resizable groups |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r["stages_s"]
        lines.append(
            f"| {r['model']} | {r['convert_s']:.2f} | {s['trace']:.2f} | {s['fold_and_analyse']:.2f} | "
            f"{s['permute']:.2f} | {s['initialise']:.2f} | {r['forward_s']:.3f} | "
            f"{r['convert_over_forward']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['resizable_groups']}/{r['groups']} |"
        )
    return "\n".join(lines)
