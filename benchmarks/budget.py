"""Budgets: planning time (data-free, MAC budget), the latency model against measurements, and
one partition-tuning step against one step of training the exported model's biases."""

from __future__ import annotations

import time

import numpy as np
import torch
import torchvision

import inn
from benchmarks.common import interleaved, ratio_stats, summary
from inn.budget import Budget, latency_fit, measure_latency
from inn.recover import as_batches, distillation_loss
from innlab.experiments import workloads


def _planning(name: str, size: int) -> dict:
    model = torchvision.models.get_model(name, num_classes=1000).eval()
    x = torch.randn(1, 3, size, size)
    imodel = inn.convert(model, x, permute=False)
    start = time.perf_counter()
    plan = imodel.plan({"macs": 0.5})  # data-free: cost model + weight sensitivity + greedy
    first = time.perf_counter() - start
    start = time.perf_counter()
    imodel.plan({"macs": 0.3})
    again = time.perf_counter() - start
    return {"model": name, "input": size, "plan_s": first, "replan_s": again,
            "predicted_fraction": plan.fraction, "groups": len(imodel.resizable_groups)}  # fmt: skip


def _latency(device: str, smoke: bool) -> dict:
    size = 32 if smoke else 224
    model = torchvision.models.resnet18(num_classes=1000).eval().to(device)
    x = torch.randn(1, 3, size, size, device=device)
    imodel = inn.convert(model, x, permute=False)
    fit = latency_fit(imodel, device=device, repeats=1 if smoke else 15)
    full_model = imodel.export().to(device)
    # Halfway between the floor (every group at one channel) and full width: on a fast machine
    # at batch 1 a fixed overhead can make a plain fraction unreachable.
    full = fit.model(np.array([float(g.full_size) for g in imodel.groups]))
    floor = fit.model(np.array([1.0 if g.resizable else float(g.full_size) for g in imodel.groups]))
    halfway = Budget("latency", absolute=0.5 * (full + floor), device=device)
    rows = []
    for budget in (halfway, Budget("macs", 0.5), Budget("params", 0.5)):
        plan = imodel.plan(budget, sensitivity="weights")
        imodel.resize(widths=plan.widths)
        predicted = imodel.cost("latency", device=device)
        small = imodel.export().to(device)
        repeats, rounds = (2, 2) if smoke else (20, 5)
        pairs = [(measure_latency(small, (x,), repeats), measure_latency(full_model, (x,), repeats))
                 for _ in range(rounds)]  # fmt: skip
        measured = float(np.median([p for p, _ in pairs]))
        ratio = float(np.median([p / f for p, f in pairs]))
        rows.append({"budget": f"{budget.kind} {plan.fraction:.0%}", "predicted_ms": 1e3 * predicted,
                     "measured_ms": 1e3 * measured, "error": predicted / measured - 1,
                     "predicted_ratio": predicted / full, "measured_ratio": ratio})  # fmt: skip
    return {"device": device, "input": size, "fit_s": fit.seconds, "rows": rows,
            "fit_points": [{"measured_ms": 1e3 * m, "predicted_ms": 1e3 * p}
                           for m, p in zip(fit.measured, fit.predicted, strict=True)]}  # fmt: skip


def _tuning_step(smoke: bool) -> dict:
    """One Adam step on the partition points of the integral model vs one on the biases of the
    exported model at the same widths (same batch, same distillation loss)."""
    work = workloads.mnist_workload("cifar_resnet18")
    imodel = inn.convert(work.model, work.test[0][0][:1]).resize(compression=0.6)
    x, _ = as_batches(work.calib)[0]
    with torch.no_grad():
        reference = work.model(x)
    points = [imodel._partitions[g.name].make_trainable().logits for g in imodel.resizable_groups
              if 1 < g.size < g.full_size]  # fmt: skip
    small = imodel.export()
    biases = [p for n, p in small.named_parameters() if n.endswith("bias")]
    for model, params in ((imodel, points), (small, biases)):
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
    steps = {}
    for name, model, params in (("tune", imodel, points), ("bias", small, biases)):
        optimiser = torch.optim.Adam(params, lr=1e-3)

        def step(model=model, optimiser=optimiser) -> None:
            optimiser.zero_grad(set_to_none=True)
            distillation_loss(model(x), reference, None, "kl").backward()
            optimiser.step()

        steps[name] = step
    samples = interleaved(steps, repeats=3 if smoke else 30)
    return {"tune_ms": 1e3 * summary(samples["tune"])["median"],
            "bias_ms": 1e3 * summary(samples["bias"])["median"],
            **ratio_stats(samples["tune"], samples["bias"])}  # fmt: skip


def run(smoke: bool = False) -> dict:
    torch.set_num_threads(2)
    models = (
        [("resnet18", 64)]
        if smoke
        else [("resnet18", 224), ("resnet50", 224), ("mobilenet_v2", 224)]
    )
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not smoke else [])
    return {
        "planning": [_planning(name, size) for name, size in models],
        "latency": [_latency(device, smoke) for device in devices],
        "tuning_step": _tuning_step(smoke),
    }


def markdown(result: dict) -> str:
    lines = ["| model | input | resizable groups | plan, MAC budget 50 % (s) | again, 30 % (s) |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in result["planning"]:
        lines.append(
            f"| {r['model']} | {r['input']} | {r['groups']} | {r['plan_s']:.2f} | {r['replan_s']:.2f} |"
        )
    for lat in result["latency"]:
        lines += ["", f"Latency model, resnet18 at {lat['input']}x{lat['input']}, batch 1, {lat['device']} "
                  f"(fitted in {lat['fit_s']:.1f} s):", "",
                  "| plan | predicted (ms) | measured (ms) | error | predicted / full | measured / full |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in lat["rows"]:
            lines.append(
                f"| {r['budget']} | {r['predicted_ms']:.2f} | {r['measured_ms']:.2f} | {r['error']:+.1%} "
                f"| {r['predicted_ratio']:.2f} | {r['measured_ratio']:.2f} |"
            )
    t = result["tuning_step"]
    lines += ["", f"Partition-tuning step / bias step of the export (demo ResNet-18 at 60 % compression, "
              f"batch 64): {t['ratio_median']:.2f} [{t['ratio_min']:.2f}, {t['ratio_max']:.2f}] "
              f"({t['tune_ms']:.1f} vs {t['bias_ms']:.1f} ms)."]  # fmt: skip
    return "\n".join(lines)
