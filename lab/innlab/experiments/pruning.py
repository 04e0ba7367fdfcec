"""Pruning without fine-tuning: the paper's Pipelines B (INN) and C (discrete baselines).

Accuracy against compression for a trained classifier, every method at the same widths per
channel group:

* ``inn-tuned``: convert, resize, tune the partition points on the calibration set (Pipeline B);
* ``inn-uniform``: convert and resize, uniform partition (no data used);
* ``inn-no-permutation``: as ``inn-tuned`` without the channel permutation (Table 2 ablation);
* ``l1``, ``activation``, ``random``: discrete structured pruning (Pipeline C), and each
  ``+calib``: the same calibration images and step budget spent on the biases;
* ``l1+bn``: L1 with BatchNorm kept and its statistics re-estimated on the calibration images
  (EagleEye's adaptive BatchNorm), ``l1+bn+calib``: then the bias budget too;
* ``tp-lamp+bn`` (``+calib``): Torch-Pruning's global LAMP ranking at the same parameter count
  (its own widths per layer), BatchNorm re-estimated (then the bias budget), the strongest peer.

Every group keeps the same fraction of its channels (the paper's protocol; the budget
experiment, :mod:`innlab.experiments.budget`, allocates widths per group).

Only the public API is used.
"""

from __future__ import annotations

import json
import statistics
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import inn
from innlab import baselines
from innlab.experiments import peers

__all__ = [
    "BASELINE_METHODS", "INN_METHODS", "PEER_METHODS", "Result", "applicable", "markdown", "plot",
    "run", "summarise",
]  # fmt: skip

INN_METHODS = ("inn-tuned", "inn-uniform", "inn-no-permutation")
PEER_METHODS = ("tp-lamp+bn", "tp-lamp+bn+calib")
BASELINE_METHODS = (
    "l1", "l1+calib", "l1+bn", "l1+bn+calib",
    "activation", "activation+calib", "random", "random+calib",
)  # fmt: skip


@dataclass(frozen=True)
class Result:
    method: str
    compression: float
    seed: int
    parameters: int
    accuracy: float


def applicable(methods: Sequence[str], model: nn.Module) -> tuple[str, ...]:
    """``methods`` without those that do not apply to ``model``: the ``+bn`` variants where it
    has no BatchNorm (they would repeat their base method); activation statistics and
    Torch-Pruning where it has attention (neither handles attention's head dimension)."""
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    has_attention = any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    return tuple(
        m
        for m in methods
        if (has_bn or "+bn" not in m)
        and not (has_attention and m.startswith(("activation", "tp-")))
    )


def accuracy(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]]) -> float:
    with torch.no_grad():
        correct = sum((model(x).argmax(1) == y).sum().item() for x, y in batches)
    return correct / sum(len(y) for _, y in batches)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def run(
    model: nn.Module,
    test: Sequence[tuple[Tensor, Tensor]],
    calib: Sequence[tuple[Tensor, Tensor]],
    *,
    compressions: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    methods: Sequence[str] = INN_METHODS + BASELINE_METHODS,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 150,
    progress: bool = True,
) -> list[Result]:
    """Evaluate ``methods`` at every compression (and seed, for the seeded ones).

    Args:
        model: trained classifier in eval mode.
        test: evaluation batches ``(inputs, targets)``.
        calib: calibration batches (a few hundred training images).
        seeds: permutation seeds of the INN methods and selection seeds of ``random``.
        steps: step budget of partition tuning and of bias calibration alike.
    """
    example = test[0][0][:1]
    results: list[Result] = []
    base = accuracy(model, test)
    total = _count(model)

    def add(method: str, seed: int, compression: float, small: nn.Module) -> None:
        results.append(Result(method, compression, seed, _count(small), accuracy(small, test)))

    def _run_method(method: str, seed: int) -> None:
        if method.startswith("inn"):
            imodel = inn.convert(model, example, seed=seed, permute=method != "inn-no-permutation")
            for c in compressions:
                imodel.resize(compression=c, sensitivity="uniform")
                if method != "inn-uniform" and c > 0:
                    inn.tune_partition(imodel, calib, steps=steps, progress=progress)
                add(method, seed, c, imodel.export())
            return
        criterion, *extras = method.split("+")
        keep_bn = "bn" in extras
        for c in compressions:
            if c == 0:
                add(method, seed, c, model)
                continue
            if criterion == "tp-lamp":
                small = peers.torch_pruning_prune(model, example, calib, _count, (1 - c) * total)
                inn.reestimate_batchnorm(small, calib)
                if "calib" in extras:
                    inn.recover.calibrate_biases(small, model, calib, steps=steps, progress=progress)
                add(method, seed, c, small)
                continue
            widths = baselines.plan_widths(model, example, c, sensitivity="uniform")
            if criterion == "l1":
                small = baselines.prune_l1(model, example, widths=widths, keep_batchnorm=keep_bn)
            elif criterion == "activation":
                small = baselines.prune_activation(model, example, calib, widths=widths)
            else:
                small = baselines.prune_random(model, example, widths=widths, seed=seed)
            if keep_bn:
                inn.reestimate_batchnorm(small, calib)
            if "calib" in extras:
                inn.recover.calibrate_biases(small, model, calib, steps=steps, progress=progress)
            add(method, seed, c, small)

    jobs = [
        (method, seed)
        for method in methods
        for seed in (seeds if method.startswith(("inn", "random")) else seeds[:1])
    ]
    bar = tqdm(jobs, desc="pruning methods", disable=not progress)
    for method, seed in bar:
        bar.set_postfix(method=method, seed=seed)
        _run_method(method, seed)
    results.append(Result("unpruned", 0.0, 0, total, base))
    return results


def summarise(results: Sequence[Result]) -> dict[str, dict[float, dict[str, float]]]:
    """``{method: {compression: {mean, min, max, spread, n, parameters}}}`` over seeds."""
    table: dict[str, dict[float, list[Result]]] = {}
    for r in results:
        table.setdefault(r.method, {}).setdefault(r.compression, []).append(r)
    out: dict[str, dict[float, dict[str, float]]] = {}
    for method, rows in table.items():
        out[method] = {}
        for c, rs in sorted(rows.items()):
            accs = [r.accuracy for r in rs]
            out[method][c] = {
                "mean": statistics.mean(accs),
                "min": min(accs),
                "max": max(accs),
                "spread": max(accs) - min(accs),
                "n": len(accs),
                "parameters": statistics.mean(r.parameters for r in rs),
            }
    return out


def markdown(results: Sequence[Result]) -> str:
    """Accuracy (%) per method and compression: mean over seeds, with [min, max] when seeded."""
    summary = summarise(results)
    compressions = sorted({c for rows in summary.values() for c in rows if c > 0 or len(rows) == 1})
    head = "| method | " + " | ".join(f"{c:.0%}" for c in compressions) + " |"
    lines = [head, "|---|" + "---:|" * len(compressions)]
    for method, rows in summary.items():
        cells = []
        for c in compressions:
            s = rows.get(c)
            if s is None:
                cells.append("")
            elif s["n"] > 1:
                cells.append(f"{100 * s['mean']:.1f} [{100 * s['min']:.1f}, {100 * s['max']:.1f}]")
            else:
                cells.append(f"{100 * s['mean']:.1f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: Sequence[Result], path: Path, title: str) -> None:
    """Accuracy against compression, one line per method (mean, min-max band over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(results)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, rows in summary.items():
        if method == "unpruned":
            ax.axhline(100 * rows[0.0]["mean"], color="black", lw=1, ls=":", label="unpruned")
            continue
        cs = sorted(rows)
        mean = [100 * rows[c]["mean"] for c in cs]
        style = "-" if method.startswith("inn") else "--"
        (line,) = ax.plot([100 * c for c in cs], mean, style, marker="o", ms=3, label=method)
        if any(rows[c]["n"] > 1 for c in cs):
            low, high = [100 * rows[c]["min"] for c in cs], [100 * rows[c]["max"] for c in cs]
            ax.fill_between([100 * c for c in cs], low, high, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("compression (% of parameters removed)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(textwrap.fill(title, 70), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save(results: Sequence[Result], out_dir: Path, title: str, command: str) -> None:
    """Write ``results.json``, ``results.md`` and ``accuracy.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "title": title, "results": [asdict(r) for r in results]}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2))
    (out_dir / "results.md").write_text(f"{title}\n\n`{command}`\n\n{markdown(results)}\n")
    plot(results, out_dir / "accuracy.png", title)
