"""Permutation solvers: time and tour quality against the number of channels, on synthetic
instances up to 4,096 channels and on the channel groups of the trained zoo models."""

from __future__ import annotations

import time

import numpy as np
import torch

import inn
from inn.permute import brute_force_order, channel_distances, open_path_order, total_variation
from innlab import zoo

SIZES = [64, 128, 256, 512, 1024, 2048, 4096]
SMOKE_SIZES = [64, 128]
SOLVERS = ["greedy-2opt", "fast-tsp"]
TRAINED = ["cifar_resnet18", "nin"]


def _instance(n: int, seed: int) -> torch.Tensor:
    """Distances between n channels of a conv-like weight: rows of a smooth function plus noise,
    shuffled (the structure conversion hopes to recover)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g)
    basis = torch.randn(8, 64, generator=g)
    rows = torch.stack([torch.sin((k + 1) * 3.0 * t) for k in range(8)], 1) @ basis
    rows = rows + 0.3 * torch.randn(n, 64, generator=g)
    return channel_distances([(rows, 0)])


def _trained(name: str) -> dict:
    """Total variation of every resizable group of a trained zoo model, summed, before and after
    the permutation of each solver (as run by ``inn.convert`` with its defaults)."""
    model = zoo.load_pretrained(name)
    row: dict = {"model": name}
    for solver in SOLVERS:
        report = inn.convert(model, torch.zeros(1, 1, 28, 28), solver=solver).report
        row["groups"] = len(report.total_variation)
        row["identity"] = sum(before for before, _ in report.total_variation.values())
        row[solver] = sum(after for _, after in report.total_variation.values())
        row[f"{solver}_s"] = report.seconds["permute"]
    return row


def run(smoke: bool = False) -> dict:
    out: dict = {"instances": [], "brute_force": []}
    out["trained"] = [_trained(name) for name in (TRAINED[:1] if smoke else TRAINED)]
    for n in SMOKE_SIZES if smoke else SIZES:
        d = _instance(n, seed=n)
        best_known = open_path_order(d, solver="fast-tsp", time_limit=2.0 if smoke else 20.0)
        reference = total_variation(d, best_known)
        row = {"n": n, "identity_over_best": total_variation(d, torch.arange(n)) / reference}
        for solver in SOLVERS:
            start = time.perf_counter()
            order = open_path_order(d, solver=solver, seed=0)
            row[f"{solver}_s"] = time.perf_counter() - start
            row[f"{solver}_over_best"] = total_variation(d, order) / reference
        out["instances"].append(row)
    for n in (5, 7, 9):
        worst = 1.0
        for seed in range(3 if smoke else 10):
            d = _instance(n, seed=seed)
            optimum = total_variation(d, brute_force_order(d))
            for solver in SOLVERS:
                worst = max(worst, total_variation(d, open_path_order(d, solver=solver)) / optimum)
        out["brute_force"].append({"n": n, "worst_ratio_to_optimum": worst})
    rows = out["instances"]
    if len(rows) >= 3:
        for solver in SOLVERS:
            ns = np.log([r["n"] for r in rows])
            ts = np.log([max(r[f"{solver}_s"], 1e-6) for r in rows])
            out[f"{solver}_time_exponent"] = float(np.polyfit(ns, ts, 1)[0])
    return out


def markdown(result: dict) -> str:
    lines = [
        "| n | greedy-2opt (s) | cost / best | fast-tsp (s) | cost / best | identity / best |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["instances"]:
        lines.append(
            f"| {r['n']} | {r['greedy-2opt_s']:.3f} | {r['greedy-2opt_over_best']:.4f} | "
            f"{r['fast-tsp_s']:.3f} | "
            f"{r['fast-tsp_over_best']:.4f} | {r['identity_over_best']:.2f} |"
        )
    for solver in SOLVERS:
        if f"{solver}_time_exponent" in result:
            lines.append(f"\n{solver}: time grows as n^{result[f'{solver}_time_exponent']:.2f}")
    lines += [
        "",
        "Trained zoo models (all resizable groups; total variation summed over the groups):",
        "",
        "| model | groups | identity | greedy-2opt / identity | (s) | fast-tsp / identity | (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["trained"]:
        lines.append(
            f"| {r['model']} | {r['groups']} | {r['identity']:.1f} | "
            f"{r['greedy-2opt'] / r['identity']:.3f} | {r['greedy-2opt_s']:.2f} | "
            f"{r['fast-tsp'] / r['identity']:.3f} | {r['fast-tsp_s']:.2f} |"
        )
    worst = max(r["worst_ratio_to_optimum"] for r in result["brute_force"])
    lines.append(f"\nn <= 9: worst ratio to the brute-force optimum over both solvers: {worst:.4f}")
    return "\n".join(lines)
