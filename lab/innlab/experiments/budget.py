"""Pruning to a budget without fine-tuning: ``inn`` against Torch-Pruning, side by side.

For each budget (a fraction of the original's parameters or MACs) every method gets the same
256 calibration images and the same step budget:

* ``inn``: :func:`inn.prune` with its defaults (BatchNorm kept, widths allocated by the
  measured output change of each group, BatchNorm statistics re-estimated, then biases and
  BatchNorm parameters calibrated with the same step budget as Torch-Pruning's ``+calib``);
* ``inn-resample`` / ``inn-select``: the same, every narrowed group resampled / its original
  channels selected by L1 norm (``inn`` chooses per group which of the two loses less);
* ``inn+tune``: the same, then partition tuning and the statistics measured again;
* ``inn-data-free``: BatchNorm folded, widths by the data-free sensitivity, uniform points: no
  data at all;
* ``inn-uniform+tune``: every group at the same fraction, partition tuning (the default before
  budgets);
* ``inn-trained``: a network trained with random widths (:func:`inn.train.train`; the zoo's
  twin, :func:`innlab.zoo.load_integral`), resized to the budget with no data and no tuning
  (every group at one fraction: the plan's default for a model with width statistics);
  ``inn-trained+outputs``: its groups ranked instead by their output change on synthetic
  inputs (the default until 2026-12-06);
* ``l1-alloc+bn``: the ablation that asks what the integral part adds: ``inn``'s widths per
  group, but the channels chosen by L1 norm (discrete, no resampling), BatchNorm re-estimated and
  folded;
* ``tp-{lamp,l1,taylor}+bn``: Torch-Pruning's global ranking with that importance, BatchNorm
  statistics re-estimated on the calibration images; ``+calib``: then biases and BatchNorm
  parameters trained with the same images and steps (:func:`inn.recover.calibrate_biases`).

Each row records accuracy, parameters, MACs, measured latency (batch 1, this CPU) and the
wall time of pruning. Only the public API of ``inn`` is used.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import inn
from inn.budget import count_macs, count_parameters, latency_ratio, measure_latency
from innlab import baselines
from innlab.experiments import peers
from innlab.experiments.pruning import accuracy

__all__ = [
    "METHODS",
    "NETWORKS",
    "Row",
    "against_peers",
    "load",
    "load_networks",
    "markdown",
    "plot",
    "run",
    "save",
]

METHODS = (
    "inn", "inn-resample", "inn-select", "inn+tune", "inn-data-free", "inn-uniform+tune",
    "l1-alloc+bn", "l1-alloc+bn+calib",
    "tp-lamp+bn", "tp-l1+bn", "tp-taylor+bn",
    "tp-lamp+bn+calib", "tp-l1+bn+calib", "tp-taylor+bn+calib",
)  # fmt: skip


_SAMPLED = ("inn-resample", "inn-select")
_SEEDED = ("inn", "inn-data-free", *_SAMPLED)  # their result depends on the permutation seed

NETWORKS = ("cifar_resnet18", "nin", "mobilenet_v2", "mobilenet_v3", "efficientnet")
"""The zoo networks of the comparison with Torch-Pruning (``results/budget-NAME``)."""


@dataclass(frozen=True)
class Row:
    method: str
    kind: str
    fraction: float
    seed: int
    accuracy: float
    parameters: int
    macs: int
    latency_ms: float
    seconds: float


def _inn(
    method: str,
    model: nn.Module,
    example: Tensor,
    calib,
    kind: str,
    fraction: float,
    steps: int,
    seed: int,
    trained: inn.IntegralModel | None = None,
    progress: bool = False,
) -> nn.Module:
    budget = {kind: fraction}
    if method.startswith("inn-trained"):
        if trained is None:
            raise inn.InnError(f"method {method!r} needs the trained integral model: trained=")
        ranking = {"sensitivity": "outputs"} if method.endswith("+outputs") else {}
        with trained.widths_kept():
            return trained.resize(budget=budget, **ranking).export()
    if method in ("inn", "inn+tune", "inn-resample", "inn-select"):
        fit = {"steps": steps, "progress": progress}  # the step budget of Torch-Pruning's +calib
        sampling = method.removeprefix("inn-") if method in _SAMPLED else "auto"
        return inn.prune(model, example, budget=budget, calib=calib, tune=method == "inn+tune",
                         sampling=sampling, convert_options={"seed": seed}, tune_options=fit,
                         calibrate_options=fit)  # fmt: skip
    if method.startswith("l1-alloc+bn"):
        widths = inn.convert(model, example, fold_batchnorm=False).plan(budget, data=calib).widths
        small = baselines.prune_l1(model, example, widths=widths, keep_batchnorm=True)
        inn.reestimate_batchnorm(small, calib)
        if method.endswith("+calib"):
            inn.recover.calibrate_biases(small, model, calib, steps=steps, progress=progress)
        baselines.fold_batchnorms(small)  # counted as deployed, like the INN exports
        return small
    imodel = inn.convert(model, example, seed=seed)
    if method == "inn-data-free":
        imodel.resize(budget=budget)
    else:  # inn-uniform+tune
        imodel.resize(budget=budget, sensitivity="uniform")
        inn.tune_partition(imodel, calib, steps=steps, progress=progress)
    return imodel.export()


def _peer(
    method: str,
    model: nn.Module,
    example: Tensor,
    calib,
    cost: Callable[[nn.Module], float],
    target: float,
    steps: int,
    progress: bool = False,
) -> nn.Module:
    importance = method.split("+")[0].removeprefix("tp-")
    small = peers.torch_pruning_prune(model, example, calib, cost, target, importance=importance)
    inn.reestimate_batchnorm(small, calib)
    if method.endswith("+calib"):
        inn.recover.calibrate_biases(small, model, calib, steps=steps, progress=progress)
    return small


def run(
    model: nn.Module,
    test: Sequence[tuple[Tensor, Tensor]],
    calib: Sequence[tuple[Tensor, Tensor]],
    *,
    budgets: Sequence[tuple[str, float]] = (
        ("params", 0.8),
        ("params", 0.6),
        ("params", 0.4),
        ("params", 0.3),
        ("macs", 0.7),
        ("macs", 0.5),
        ("macs", 0.3),
    ),
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = (0,),
    steps: int = 150,
    progress: bool = True,
    trained: inn.IntegralModel | None = None,
) -> list[Row]:
    """Every method at every budget ``(kind, fraction of the original kept)``; ``inn`` and
    ``inn-data-free`` at every permutation seed, the tuned INN rows (ablations that cost 10x
    more) and Torch-Pruning (deterministic) at the first. ``trained``: the model of the
    ``inn-trained`` rows."""
    example = test[0][0][:1]
    costs = {"params": count_parameters, "macs": lambda m: count_macs(m, example)}
    full = {k: f(model) for k, f in costs.items()}
    rows = [Row("unpruned", "params", 1.0, 0, accuracy(model, test), full["params"], full["macs"],
                1e3 * measure_latency(model, (example,)), 0.0)]  # fmt: skip
    jobs = [(m, k, f, s) for k, f in budgets for m in methods
            for s in (seeds if m in _SEEDED else seeds[:1])]  # fmt: skip
    bar = tqdm(jobs, desc="budget experiment", disable=not progress)
    for method, kind, fraction, seed in bar:
        bar.set_postfix(method=method, budget=f"{kind} {fraction:.0%}")
        torch.manual_seed(seed)
        start = time.perf_counter()
        if not method.startswith("tp-"):
            small = _inn(
                method, model, example, calib, kind, fraction, steps, seed, trained, progress
            )
        else:
            target = fraction * full[kind]
            small = _peer(method, model, example, calib, costs[kind], target, steps, progress)
        seconds = time.perf_counter() - start
        small.eval()
        # interleaved with the unpruned model: noise cannot make a smaller model look slower
        latency = rows[0].latency_ms * latency_ratio(small, model, (example,))
        rows.append(Row(method, kind, fraction, seed, accuracy(small, test), count_parameters(small),
                        count_macs(small, example), latency, seconds))  # fmt: skip
    return rows


def _select(rows: Sequence[Row], method: str, kind: str, fraction: float) -> list[Row]:
    return [r for r in rows if r.method == method and r.kind == kind and r.fraction == fraction]


def _mean(rows: Sequence[Row], field: str) -> float:
    return sum(getattr(r, field) for r in rows) / len(rows)


def _accuracy_cell(sel: Sequence[Row]) -> str:
    """Mean accuracy (%), with [min, max] over seeds."""
    accs = [100 * r.accuracy for r in sel]
    cell = f"{sum(accs) / len(accs):.1f}"
    return cell + (f" [{min(accs):.1f}, {max(accs):.1f}]" if len(accs) > 1 else "")


def _cost_cell(sel: Sequence[Row]) -> str:
    return (
        f"{_mean(sel, 'parameters') / 1e3:.0f} / {_mean(sel, 'macs') / 1e6:.1f} / "
        f"{_mean(sel, 'latency_ms'):.2f} / {_mean(sel, 'seconds'):.1f}"
    )


def _table(
    rows: Sequence[Row], kind: str, methods: Sequence[str], fractions: Sequence[float],
    cell: Callable[[Sequence[Row]], str],
) -> list[str]:  # fmt: skip
    """Markdown lines: one row per method, one column per budget fraction."""
    lines = ["| method | " + " | ".join(f"{f:.0%}" for f in fractions) + " |",
             "|---|" + "---:|" * len(fractions)]  # fmt: skip
    for method in methods:
        cells = [cell(sel) if (sel := _select(rows, method, kind, f)) else "" for f in fractions]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def markdown(rows: Sequence[Row]) -> str:
    """One table per budget kind: accuracy (%) per method and budget (mean [min, max] over seeds),
    then parameters, MACs, latency and pruning time at each budget."""
    out = []
    base = next(r for r in rows if r.method == "unpruned")
    for kind in ("params", "macs"):
        fractions = sorted(
            {r.fraction for r in rows if r.kind == kind and r.method != "unpruned"}, reverse=True
        )
        if not fractions:
            continue
        methods = list(
            dict.fromkeys(r.method for r in rows if r.kind == kind and r.method != "unpruned")
        )
        out.append(
            f"Accuracy (%) at a {kind} budget (fraction of the original kept; unpruned "
            + f"{100 * base.accuracy:.1f}):\n"
        )
        out += _table(rows, kind, methods, fractions, _accuracy_cell)
        out.append("")
        out.append(
            f"Cost at the {kind} budget: parameters (k) / MACs (M) / latency at batch 1 (ms) / "
            + "seconds to prune:\n"
        )
        out += _table(rows, kind, methods, fractions, _cost_cell)
        out.append("")
    out.append(
        f"Unpruned: {base.parameters / 1e3:.0f} k parameters, {base.macs / 1e6:.1f} M MACs, "
        + f"{base.latency_ms:.2f} ms."
    )
    return "\n".join(out)


def plot(rows: Sequence[Row], path: Path, title: str) -> None:
    """Accuracy against the budget, one column per kind, INN solid and Torch-Pruning dashed; the
    second row zooms into the 5 points below the unpruned accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [
        k for k in ("params", "macs") if any(r.kind == k and r.method != "unpruned" for r in rows)
    ]
    fig, axes = plt.subplots(2, len(kinds), figsize=(6 * len(kinds), 8), squeeze=False)
    base = 100 * next(r for r in rows if r.method == "unpruned").accuracy
    for column, kind in enumerate(kinds):
        for zoom, ax in enumerate(axes[:, column]):
            for method in dict.fromkeys(
                r.method for r in rows if r.kind == kind and r.method != "unpruned"
            ):
                fs = sorted({r.fraction for r in rows if r.method == method and r.kind == kind})
                accs = [100 * _mean(_select(rows, method, kind, f), "accuracy") for f in fs]
                style = "-" if method.startswith("inn") else "--"
                ax.plot([100 * f for f in fs], accs, style, marker="o", ms=3, label=method)
            ax.axhline(base, color="black", lw=1, ls=":", label="unpruned")
            ax.set_xlabel(f"{kind} kept (% of the original)")
            ax.set_ylabel("test accuracy (%)" + (", zoomed" if zoom else ""))
            ax.invert_xaxis()
            ax.grid(alpha=0.3)
            ax.set_ylim((base - 5, base + 0.5) if zoom else (0, 100))
            if not zoom:
                ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load(path: Path) -> tuple[list[Row], str, str]:
    """Rows, title and command of a ``results.json`` written by :func:`save`."""
    payload = json.loads(Path(path).read_text())
    return [Row(**r) for r in payload["rows"]], payload["title"], payload["command"]


def load_networks(results: Path) -> dict[str, tuple[list[Row], str]]:
    """Network -> (rows, command) of every ``results/budget-NAME/results.json`` there is, for
    the :data:`NETWORKS` of the comparison, in their order."""
    found = {}
    for name in NETWORKS:
        path = Path(results) / f"budget-{name}" / "results.json"
        if path.is_file():
            rows, _, command = load(path)
            found[name] = (rows, command)
    return found


def save(rows: Sequence[Row], out_dir: Path, title: str, command: str) -> None:
    """Write ``results.json``, ``results.md`` and ``accuracy.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "title": title, "rows": [asdict(r) for r in rows]}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2))
    (out_dir / "results.md").write_text(f"{title}\n\n`{command}`\n\n{markdown(rows)}\n")
    plot(rows, out_dir / "accuracy.png", title)


def against_peers(results: Mapping[str, Sequence[Row]], method: str = "inn") -> str:
    """Markdown: per network (name -> its rows), ``method``'s mean accuracy at every budget
    beside the best Torch-Pruning row at that budget (which one, in brackets) and the
    difference; the last column compares the mean seconds to prune of the two."""
    budgets = sorted(
        {(r.kind, r.fraction) for rows in results.values() for r in rows if r.method == method},
        key=lambda b: (b[0] != "params", -b[1]),
    )
    head = [f"{f:.0%} {'params' if k == 'params' else 'MACs'}" for k, f in budgets]
    lines = [
        "| network (unpruned %) | | " + " | ".join(head) + " | seconds to prune |",
        "|---|---|" + "---:|" * (len(budgets) + 1),
    ]
    for name, rows in results.items():
        base = next(r for r in rows if r.method == "unpruned")
        ours, peers, gaps, ours_s, peers_s = [], [], [], [], []
        for kind, fraction in budgets:
            mine = _select(rows, method, kind, fraction)
            peer_rows = {
                m: sel
                for m in dict.fromkeys(r.method for r in rows)
                if m.startswith("tp-") and (sel := _select(rows, m, kind, fraction))
            }
            if not mine or not peer_rows:
                for cells in (ours, peers, gaps):
                    cells.append("")
                continue
            best = max(peer_rows, key=lambda m: _mean(peer_rows[m], "accuracy"))
            theirs = peer_rows[best]
            ours.append(f"{100 * _mean(mine, 'accuracy'):.1f}")
            peers.append(f"{100 * _mean(theirs, 'accuracy'):.1f} ({best.removeprefix('tp-')})")
            gap = round(100 * (_mean(mine, "accuracy") - _mean(theirs, "accuracy")), 1) + 0.0
            gaps.append(f"{gap:+.1f}")  # + 0.0: no "-0.0"
            ours_s.append(_mean(mine, "seconds"))
            peers_s.append(_mean(theirs, "seconds"))
        seconds = (
            f"{sum(ours_s) / len(ours_s):.1f} vs {sum(peers_s) / len(peers_s):.1f}"
            if ours_s
            else ""
        )
        lines += [
            f"| {name} ({100 * base.accuracy:.1f}) | {method} | "
            + " | ".join(ours)
            + f" | {seconds} |",
            "| | best Torch-Pruning | " + " | ".join(peers) + " | |",
            "| | difference | " + " | ".join(gaps) + " | |",
        ]
    return "\n".join(lines)
