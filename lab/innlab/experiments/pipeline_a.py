"""The paper's Pipeline A (Table 1) at CPU scale: networks trained to work at every width.

Every row trains the same architecture with the same optimiser, schedule, data order and number
of epochs (:func:`inn.train.train`), then is evaluated at uniform fractions of every resizable
group's width:

* ``discrete``: the plain network trained normally (full width only); ``discrete-alone``: the
  plain network with each narrower fraction of every group's channels, trained alone from a
  fresh initialisation (a subset of the full network's initial channels), the same loop and
  epochs (the individually trained networks universally slimmable networks are
  measured against, Yu & Huang 2019): what each width reaches when it is all that is trained;
* ``inn-scratch``: an INN trained from a fresh initialisation with random widths (sandwich rule,
  smoothness penalty), BatchNorm folded away at initialisation (no normalisation: the paper's
  setting; trained at ``lr`` x ``converted_lr``: it stays at chance at ``lr`` too);
* ``inn-scratch+bn``: the same with integral BatchNorm (statistics tracked at full width and
  sampled at every other width: no data at evaluation); ``inn-scratch+bn+re`` re-estimates them
  per width on the calibration images; ``inn-scratch+bn-s0``: without the smoothness penalty;
* ``inn-converted``: ``discrete`` converted (BatchNorm kept) and fine-tuned with random widths
  for as many epochs again (learning rate x ``converted_lr``), no data at evaluation;
  ``inn-converted+re``: statistics re-estimated per width; ``inn-converted+kd``: the discrete
  network is also the teacher of every width (``inn.train``'s ``teacher``), no data at
  evaluation; ``inn-converted+select`` and ``inn-scratch+bn+select``: narrow widths keep each
  group's strongest channels (``channels="select"``: ranked once when training starts, nested
  as in slimmable networks), no smoothness penalty, in-place distillation as the slimmable rows
  (``slimmable_distill``), no data at evaluation (width buckets per selected channel);
  ``inn-converted+select+re``: statistics re-estimated per width; ``inn-converted+select+kd``:
  selected channels with the discrete network as the teacher of every width instead of in-place
  distillation; ``inn-converted+select+kd+uniform``: the same with one fraction for every group
  per random draw (``WidthSampler.same_fraction``), so that the uniform widths evaluated are the
  ones trained; ``inn-converted+select+kd+skew``: the same as ``inn-converted+select+kd`` with
  the random draws skewed to narrow widths (``WidthSampler(skew=2)``: half of them in the lowest
  quarter of the range); ``inn-converted+select+kd+full-lr``: the same as
  ``inn-converted+select+kd`` at the discrete network's own learning rate (``lr``, not
  ``lr`` x ``converted_lr``); ``inn-converted+select+kd+full-lr+skew``: that with skewed draws;
* ``slimmable``: universally slimmable (first channels, same sandwich draws), BatchNorm
  recalibrated per width on the calibration images; ``slimmable-4``: four fixed widths
  (1, 0.75, 0.5, 0.25) per step, as slimmable networks with switches; ``slimmable-converted``:
  ``discrete`` made universally slimmable, fine-tuned like ``inn-converted`` (same epochs and
  rate), BatchNorm recalibrated; ``slimmable-converted+uniform``: the same with one width
  multiplier for the whole network per draw, as universally slimmable networks are trained
  (Yu & Huang 2019); ``slimmable-converted+full-lr``: ``slimmable-converted`` at ``lr``;
* ``l1+bn``: ``discrete`` pruned by the L1 norm, BatchNorm re-estimated (no training);
* ``inn-tune``: ``discrete`` converted, resized and partition-tuned (Pipeline B).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

import inn
from inn.train import WidthSampler, at_widths, train, uniform_widths
from innlab.baselines import prune_l1
from innlab.experiments.pruning import accuracy
from innlab.experiments.slimmable import SlimmableNetwork

__all__ = ["FRACTIONS", "METHODS", "Row", "load", "markdown", "plot", "run", "save"]

METHODS = (
    "discrete", "discrete-alone", "inn-scratch", "inn-scratch+bn", "inn-scratch+bn+re",
    "inn-scratch+bn-s0", "inn-converted", "inn-converted+re", "inn-converted+kd",
    "inn-converted+select", "inn-converted+select+re", "inn-converted+select+kd",
    "inn-converted+select+kd+uniform", "inn-converted+select+kd+skew",
    "inn-converted+select+kd+full-lr", "inn-converted+select+kd+full-lr+skew",
    "inn-scratch+bn+select",
    "slimmable", "slimmable-4", "slimmable-converted", "slimmable-converted+uniform",
    "slimmable-converted+full-lr", "l1+bn", "inn-tune",
)  # fmt: skip
FRACTIONS = (0.25, 0.35, 0.5, 0.6, 0.75, 0.9, 1.0)
Batches = list[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Row:
    method: str
    seed: int
    width: float  # fraction of every resizable group's channels
    accuracy: float
    train_s: float


def run(
    make_model: Callable[[], nn.Module],
    train_set: Dataset,
    test: Batches,
    calib: Batches,
    *,
    epochs: float = 2,
    seeds: Sequence[int] = (0, 1, 2),
    fractions: Sequence[float] = FRACTIONS,
    methods: Sequence[str] = METHODS,
    low: float = 0.25,
    batch_size: int = 64,
    lr: float = 0.05,
    tune_steps: int = 50,
    converted_lr: float = 0.2,
    smoothness: float = 3.0,
    slimmable_distill: bool = True,
    optimiser: str = "sgd",
    weight_decay: float = 5e-4,
    progress: bool = True,
) -> list[Row]:
    """Train and evaluate every method of ``methods`` for each seed (see the module doc).

    Every row: ``optimiser`` (SGD with Nesterov momentum, or AdamW) at ``lr`` with
    ``weight_decay``, linear warm-up then cosine, gradient norm clipped at 5, ``epochs`` epochs
    of ``batch_size``; sandwich rows draw widths in ``[low, 1]``.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise inn.InnError(f"unknown Pipeline A methods {sorted(unknown)}; known: {METHODS}")
    example = next(iter(test))[0][:1]
    rows: list[Row] = []
    recipe = dict(
        epochs=epochs, batch_size=batch_size, lr=lr, clip_norm=5.0, progress=progress,
        statistics_batches=20, optimiser=optimiser, weight_decay=weight_decay,
    )  # fmt: skip

    def add(method: str, seed: int, results: dict[float, float], seconds: float) -> None:
        rows.extend(Row(method, seed, f, a, seconds) for f, a in results.items())
        if progress:
            print(f"  {method} seed {seed} ({seconds:.0f} s): "
                  + " ".join(f"{f:.0%}:{a:.3f}" for f, a in results.items()), flush=True)  # fmt: skip

    def fresh(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return make_model().eval()

    def evaluated(model: Any, evaluate: Callable[[Any], float]) -> dict[float, float]:
        return at_widths(model, fractions, evaluate)

    def re_estimated(model: nn.Module) -> float:
        inn.reestimate_batchnorm(model, calib)
        return accuracy(model, test)

    def recalibrated(slim: SlimmableNetwork) -> float:
        return re_estimated(slim.export().eval())

    def tuned(imodel: inn.IntegralModel) -> float:
        if any(g.size < g.full_size for g in imodel.resizable_groups):
            inn.tune_partition(imodel, calib, steps=tune_steps)
        return accuracy(imodel, test)

    def plain_accuracy(model: nn.Module) -> float:
        return accuracy(model, test)

    for seed in seeds:
        # channels=None: each row's model as it is (resampled after inn.convert), unless the row
        # selects them
        options = {**recipe, "seed": seed, "channels": None}
        sandwich = {**options, "sampling": "sandwich", "num_random": 2}
        discrete, seconds = _trained_plain(fresh(seed), example, train_set, options)
        plain = discrete.net.eval()
        if "discrete" in methods:
            add("discrete", seed, {1.0: accuracy(plain, test)}, seconds)
        if "discrete-alone" in methods:
            alone, spent = {1.0: accuracy(plain, test)}, [seconds]
            for f in (f for f in fractions if f < 1.0):
                start = _narrow_plain(fresh(seed), example, f)
                narrow, took = _trained_plain(start, example, train_set, options)
                alone[f], spent = accuracy(narrow.net.eval(), test), [*spent, took]
            add("discrete-alone", seed, alone, float(np.mean(spent)))

        small_lr = lr * converted_lr
        selected = {"channels": "select", "distill": slimmable_distill}
        inn_rows = (  # (method, fold BatchNorm, smoothness, learning rate, other settings)
            # no normalisation: the smaller rate (it stays at chance at both, measured)
            ("inn-scratch", True, smoothness, small_lr, {}),
            ("inn-scratch+bn", False, smoothness, lr, {}),
            ("inn-scratch+bn-s0", False, 0.0, lr, {}),
            ("inn-scratch+bn+select", False, 0.0, lr, selected),
            ("inn-converted", False, smoothness, small_lr, {}),
            ("inn-converted+kd", False, smoothness, small_lr, {"teacher": plain}),
            ("inn-converted+select", False, 0.0, small_lr, selected),
            ("inn-converted+select+kd", False, 0.0, small_lr, {"channels": "select", "teacher": plain}),
            ("inn-converted+select+kd+uniform", False, 0.0, small_lr,
             {"channels": "select", "teacher": plain, "same_fraction": True}),
            ("inn-converted+select+kd+skew", False, 0.0, small_lr,
             {"channels": "select", "teacher": plain, "skew": 2.0}),
            ("inn-converted+select+kd+full-lr", False, 0.0, lr,
             {"channels": "select", "teacher": plain}),
            ("inn-converted+select+kd+full-lr+skew", False, 0.0, lr,
             {"channels": "select", "teacher": plain, "skew": 2.0}),
        )
        for method, fold, penalty, rate, other in inn_rows:
            if method not in methods and f"{method}+re" not in methods:
                continue
            if method.startswith("inn-converted"):
                imodel = inn.convert(plain, example, fold_batchnorm=fold, seed=seed)
            else:
                imodel = inn.convert(fresh(seed), example, permute=False, fold_batchnorm=fold)
            other = dict(other)
            widths = WidthSampler.for_model(
                imodel, (low, 1.0), sampling="sandwich", num_random=sandwich["num_random"],
                seed=seed, same_fraction=other.pop("same_fraction", False),
                skew=other.pop("skew", 1.0),
            )  # fmt: skip
            seconds = _timed(train, imodel, train_set, widths=widths, smoothness=penalty,
                             **{**sandwich, "lr": rate, **other})  # fmt: skip
            if method in methods:
                add(method, seed, evaluated(imodel, plain_accuracy), seconds)
            if f"{method}+re" in methods:
                add(f"{method}+re", seed, evaluated(imodel, re_estimated), seconds)

        slim_rows = (  # (method, start, width rule, learning rate, one fraction per draw)
            ("slimmable", None, "sandwich", lr, False),
            ("slimmable-4", None, "fixed", lr, False),
            ("slimmable-converted", plain, "sandwich", small_lr, False),
            ("slimmable-converted+uniform", plain, "sandwich", small_lr, True),
            ("slimmable-converted+full-lr", plain, "sandwich", lr, False),
        )
        for method, start, rule, rate, same in slim_rows:
            if method in methods:
                net = fresh(seed) if start is None else copy.deepcopy(start)
                slim = SlimmableNetwork(net, example)
                sampler = WidthSampler.for_groups(slim.groups, (low, 1.0), sampling=rule, seed=seed,
                                                  same_fraction=same)  # fmt: skip
                seconds = _timed(train, slim, train_set, widths=sampler, distill=slimmable_distill,
                                 **{**options, "lr": rate})  # fmt: skip
                add(method, seed, evaluated(slim, recalibrated), seconds)

        if "l1+bn" in methods:
            add("l1+bn", seed, {
                f: accuracy(_l1(plain, example, uniform_widths(discrete, f), calib), test)
                for f in fractions
            }, 0.0)  # fmt: skip
        if "inn-tune" in methods:
            add("inn-tune", seed, evaluated(inn.convert(plain, example, seed=seed), tuned), 0.0)
    return rows


def _trained_plain(
    net: nn.Module, example: Tensor, train_set: Dataset, options: dict[str, Any]
) -> tuple[SlimmableNetwork, float]:
    """``net`` trained by the loop at its full width only, and the seconds it took. The wrapper
    trains its own copy of ``net``: the trained network is its ``.net``."""
    wrapped = SlimmableNetwork(net, example)
    full = WidthSampler.for_groups(
        wrapped.groups, (1.0, 1.0), sampling="random", seed=options["seed"]
    )
    return wrapped, _timed(train, wrapped, train_set, widths=full, **options)


def _narrow_plain(model: nn.Module, example: Tensor, fraction: float) -> nn.Module:
    """``model`` as a plain network with ``fraction`` of every resizable group's channels: its
    own initial values of a subset of them (selected, not resampled), BatchNorms kept."""
    imodel = inn.convert(model, example, permute=False, fold_batchnorm=False)
    imodel.resize(widths=uniform_widths(imodel, fraction))
    inn.recover.select_channels(imodel)
    return imodel.export(fold_batchnorm=False)


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def _l1(plain: nn.Module, example: Tensor, widths: dict[str, int], calib: Batches) -> nn.Module:
    small = prune_l1(plain, example, widths=widths, keep_batchnorm=True)
    inn.reestimate_batchnorm(small, calib)
    return small


def summarise(rows: Sequence[Row]) -> dict[str, dict[float, tuple[float, float]]]:
    """method -> width -> (mean, std over seeds) of the accuracy."""
    out: dict[str, dict[float, tuple[float, float]]] = {}
    for method in dict.fromkeys(r.method for r in rows):
        widths = sorted({r.width for r in rows if r.method == method})
        out[method] = {}
        for w in widths:
            values = [r.accuracy for r in rows if r.method == method and r.width == w]
            out[method][w] = (float(np.mean(values)), float(np.std(values)))
    return out


def markdown(rows: Sequence[Row]) -> str:
    table = summarise(rows)
    widths = sorted({r.width for r in rows}, reverse=True)
    lines = [
        "| method | " + " | ".join(f"{w:.0%}" for w in widths) + " | train (s) |",
        "|---|" + "---:|" * (len(widths) + 1),
    ]
    for method, cells in table.items():
        seconds = np.mean([r.train_s for r in rows if r.method == method])
        values = [
            f"{100 * cells[w][0]:.1f} ± {100 * cells[w][1]:.1f}" if w in cells else "–"
            for w in widths
        ]
        lines.append(f"| {method} | " + " | ".join(values) + f" | {seconds:.0f} |")
    seeds = len({r.seed for r in rows})
    lines.append(f"\nTop-1 accuracy (%), mean ± std over {seeds} seeds, at a uniform fraction of "
                 "every resizable group's channels.")  # fmt: skip
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: Path, title: str) -> None:
    """Accuracy against width per method: the whole range, and a zoom on the top 8 points."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarise(rows)
    fig, axes = plt.subplots(2, 1, figsize=(8, 8), height_ratios=(1, 1.2))
    best = max(m for cells in table.values() for m, _ in cells.values())
    for ax in axes:
        for k, (method, cells) in enumerate(table.items()):
            if len(cells) < 2:
                ((_, (m, _)),) = cells.items()
                ax.axhline(100 * m, color="grey", ls=":", label=f"{method} (full width)")
                continue
            ws = sorted(cells)
            ax.errorbar([100 * w for w in ws], [100 * cells[w][0] for w in ws],
                        yerr=[100 * cells[w][1] for w in ws], marker="o", ms=3, capsize=2,
                        ls="-" if k < 10 else "--", label=method)  # fmt: skip
        ax.set_xlabel("width (% of every group's channels)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, 100)
    axes[0].set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    axes[1].set_ylim(100 * best - 8, 100 * best + 0.5)
    axes[1].set_title("zoom: the top 8 points", fontsize=9)
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save(rows: Sequence[Row], out_dir: Path, title: str, command: str, setup: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"title": title, "command": command, "setup": setup,
               "rows": [asdict(r) for r in rows]}  # fmt: skip
    (out_dir / "results.json").write_text(json.dumps(payload, indent=1))
    (out_dir / "results.md").write_text(f"# {title}\n\n`{command}`\n\n{markdown(rows)}\n")
    plot(rows, out_dir / "accuracy.png", title)


def load(path: Path) -> tuple[list[Row], dict]:
    payload = json.loads(path.read_text())
    return [Row(**r) for r in payload["rows"]], payload
