"""Timing helpers: interleaved repeats, medians and spreads, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

__all__ = [
    "describe",
    "interleaved",
    "machine",
    "memory_mb",
    "ratio_stats",
    "reset_peak_memory",
    "summary",
]


def _cpu_model() -> str:
    """The CPU's model name (Linux), else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def describe(info: dict[str, object]) -> str:
    """One line for a :func:`machine` record."""
    gpu = f", GPU {info['cuda']}" if info.get("cuda") else ", no GPU"
    return (
        f"{info['cpu']}, {info['cores']} cores, torch {info['torch']} with {info['threads']} "
        f"threads, Python {info['python']}{gpu}"
    )


def reset_peak_memory() -> None:
    """Reset this process's peak resident set size (Linux: ``/proc/self/clear_refs``), so the
    peak of one stage is not hidden by an earlier one (e.g. importing torch)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_mb() -> dict[str, float]:
    """Current (``VmRSS``) and peak (``VmHWM``) resident set size of this process, in MB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return {"rss": fields["VmRSS"], "peak": fields["VmHWM"]}


def summary(samples: list[float]) -> dict[str, float]:
    """Median and spread (min, max) of timing samples, in seconds."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
    }


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time several functions in turn, ``repeats`` rounds, so drifts of a noisy machine hit all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def ratio_stats(samples: list[float], reference: list[float]) -> dict[str, float]:
    """Median, min and max of the per-round ratios of two interleaved timing series."""
    ratios = [a / b for a, b in zip(samples, reference, strict=True)]
    return {
        "ratio_median": summary(ratios)["median"],
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }
