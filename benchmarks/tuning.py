"""Partition tuning time per compression for the demo network (default settings)."""

from __future__ import annotations

import torch

import inn
from innlab.experiments import workloads


def run(smoke: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    work = workloads.mnist_workload("cifar_resnet18")
    imodel = inn.convert(work.model, work.test[0][0][:1])
    results = []
    for compression in (0.4,) if smoke else (0.2, 0.4, 0.6):
        imodel.resize(compression=compression)
        report = inn.tune_partition(imodel, work.calib, steps=5 if smoke else 150)
        results.append(
            {
                "compression": compression,
                "seconds": report.seconds,
                "steps": report.steps,
                "loss_before": report.loss_before,
                "loss_after": report.loss_after,
            }
        )
    return results


def markdown(results: list[dict]) -> str:
    lines = [
        "| compression | tuning (s) | steps | KL before | KL after |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['compression']:.0%} | {r['seconds']:.1f} | {r['steps']} | {r['loss_before']:.3f} | "
            f"{r['loss_after']:.4f} |"
        )
    return "\n".join(lines)
