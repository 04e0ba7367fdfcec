"""Per-group error analysis: continuous resampling against discrete selection, one group at a time.

For a network converted with its BatchNorms kept (``inn.convert(model, x,
fold_batchnorm=False)``), every resizable group is narrowed alone (the other groups at full
width) to a few fractions of its channels, in two ways:

* ``resampled``: the integral model's uniform resize of that group
  (``IntegralModel.resize(widths={group: width})``): every layer touching the group is sampled
  at ``width`` uniform points of its (permuted) channel axis;
* ``selected``: the same group keeps the same number of channels by discrete selection, the
  L1-largest channels of the layers that produce it (:func:`innlab.baselines.prune_l1` with the
  BatchNorms kept and pruned alongside).

Both are measured before and after :func:`inn.reestimate_batchnorm` on the calibration batches:
the relative mean squared error of the logits against the same network at full width, and the
accuracy on the test batches. Each group is labelled by its role in an inverted-residual network
(MobileNetV2): ``stem``, ``expansion`` (the expanded channels, which the depthwise convolution
and the projection's input share), ``projection`` (a block's output that no later block adds
to), ``residual stream`` (a block's output that the next blocks add to: one group for all of
them), ``head`` (a 1x1 convolution outside the blocks), ``other``.

Only the public API of ``inn`` is used.

Command: ``python -m innlab.experiments.group_errors --out results/group-errors-mobilenet_v2``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import inn
from innlab import baselines
from innlab.experiments.pruning import accuracy

__all__ = [
    "METHODS",
    "ROLES",
    "GroupError",
    "group_errors",
    "group_role",
    "main",
    "markdown",
    "plot",
    "reestimation_floor",
    "summary",
]

log = logging.getLogger(__name__)

METHODS = ("resampled", "selected")
ROLES = ("stem", "expansion", "projection", "residual stream", "head", "other")

Batches = Sequence[tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class GroupError:
    """One group narrowed alone to ``width`` of ``full_size`` channels by ``method``."""

    group: str
    role: str
    full_size: int
    width: int
    fraction: float
    method: str
    relative_mse: float  # after BatchNorm re-estimation, against the full-width network
    accuracy: float
    relative_mse_before_bn: float  # the same, with the statistics as they were
    accuracy_before_bn: float


def group_role(model: nn.Module, group: str) -> str:
    """The role of group ``group`` (``"<producing module>:out"``) in an inverted-residual
    network, from the module names and types of ``model`` (see the module docstring).

    A block is a module with a ``use_res_connect`` attribute (torchvision's
    ``InvertedResidual``); its last convolution is the projection, its other 1x1 convolutions
    are expansions. A projection is a residual stream when the next block of the same container
    adds its input to its output.
    """
    producer = group.rpartition(":")[0]
    parts = producer.split(".")
    for i in range(len(parts) - 1, 0, -1):
        block_path = ".".join(parts[:i])
        block = model.get_submodule(block_path)
        if not hasattr(block, "use_res_connect"):
            continue
        convs = [name for name, m in block.named_modules() if isinstance(m, nn.Conv2d)]
        if ".".join(parts[i:]) != convs[-1]:
            return "expansion"
        parent_path, _, index = block_path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        following = (
            parent[int(index) + 1]
            if index.isdigit()
            and isinstance(parent, nn.Sequential)
            and int(index) + 1 < len(parent)
            else None
        )
        return "residual stream" if getattr(following, "use_res_connect", False) else "projection"
    try:
        module = model.get_submodule(producer)
    except AttributeError:
        return "other"
    if isinstance(module, nn.Conv2d):
        return "head" if module.kernel_size == (1, 1) else "stem"
    return "other"


def _logits(model: nn.Module, batches: Batches) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x) for x, _ in batches])


def _relative_mse(out: Tensor, reference: Tensor) -> float:
    return float(((out - reference) ** 2).mean() / (reference**2).mean().clamp_min(1e-30))


def group_errors(
    model: nn.Module,
    example_inputs: Tensor,
    calib: Batches,
    test: Batches,
    *,
    fractions: Sequence[float] = (0.75, 0.5, 0.25),
    groups: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[GroupError]:
    """Narrow each resizable group alone by resampling and by selection (see the module
    docstring) and measure the output error.

    Args:
        model: a trained network in eval mode, with its BatchNorms.
        example_inputs: a batch the model accepts, e.g. shape ``(2, 1, 28, 28)``.
        calib: calibration batches ``(inputs, targets)`` for the BatchNorm statistics.
        test: test batches: the logits error and the accuracy are measured on them.
        fractions: widths as fractions of each group's channels (rounded, at least 1).
        groups: the groups to measure (default: every resizable group).
        seed: the permutation seed of the conversion.

    Returns:
        One :class:`GroupError` per group, fraction and method. The errors of ``resampled``
        are against the integral model at full width, those of ``selected`` against ``model``;
        at full width both are exactly zero (nothing is re-estimated when nothing changes).
    """
    imodel = inn.convert(model, example_inputs, fold_batchnorm=False, seed=seed).eval()
    resizable = {g.name: g for g in imodel.resizable_groups}
    names = list(resizable) if groups is None else list(groups)
    unknown = [n for n in names if n not in resizable]
    if unknown:
        raise inn.InnError(f"not resizable groups of this model: {unknown}")
    reference = {"resampled": _logits(imodel, test), "selected": _logits(model, test)}
    rows = []
    jobs = [(n, f) for n in names for f in fractions]
    for name, fraction in tqdm(jobs, disable=not progress, desc="group errors"):
        full = resizable[name].full_size
        width = min(full, inn.numerics.points_at(fraction, full))
        role = group_role(model, name)
        for method in METHODS:
            if method == "resampled":
                # a copy: re-estimation also rewrites the statistics of the BatchNorms whose
                # width is unchanged, and those stay after the group is widened again
                narrowed: nn.Module = copy.deepcopy(imodel).resize(widths={name: width})
            else:
                narrowed = baselines.prune_l1(
                    model, example_inputs, widths={name: width}, keep_batchnorm=True
                )
            before = _logits(narrowed, test)
            acc_before = accuracy(narrowed, test)
            if width < full:
                inn.reestimate_batchnorm(narrowed, calib)
            after = _logits(narrowed, test)
            acc_after = accuracy(narrowed, test)
            rows.append(
                GroupError(
                    group=name,
                    role=role,
                    full_size=full,
                    width=width,
                    fraction=float(fraction),
                    method=method,
                    relative_mse=_relative_mse(after, reference[method]),
                    accuracy=acc_after,
                    relative_mse_before_bn=_relative_mse(before, reference[method]),
                    accuracy_before_bn=acc_before,
                )
            )
    drift = _relative_mse(_logits(imodel, test), reference["resampled"])
    if drift > 0:
        log.warning("the integral model at full width drifted by %.3g after the analysis", drift)
    return rows


def summary(rows: Sequence[GroupError]) -> list[dict]:
    """Per role and fraction: the mean error and accuracy of each method, and how many groups
    each wins (lower relative MSE after re-estimation; ties count for neither)."""
    out = []
    keys = sorted({(r.role, r.fraction) for r in rows}, key=lambda k: (ROLES.index(k[0]), -k[1]))
    for role, fraction in keys:
        by = {(r.group, r.method): r for r in rows if r.role == role and r.fraction == fraction}
        groups = sorted({g for g, _ in by})
        entry: dict = {"role": role, "fraction": fraction, "groups": len(groups)}
        for method in METHODS:
            picked = [by[(g, method)] for g in groups if (g, method) in by]
            entry[f"{method}_mse"] = sum(r.relative_mse for r in picked) / max(len(picked), 1)
            entry[f"{method}_mse_before_bn"] = sum(r.relative_mse_before_bn for r in picked) / max(
                len(picked), 1
            )
            entry[f"{method}_accuracy"] = sum(r.accuracy for r in picked) / max(len(picked), 1)
        pairs = [(by[(g, "resampled")], by[(g, "selected")]) for g in groups]
        entry["resampled_wins"] = sum(a.relative_mse < b.relative_mse for a, b in pairs)
        entry["selected_wins"] = sum(b.relative_mse < a.relative_mse for a, b in pairs)
        out.append(entry)
    return out


def allocation_by_role(
    model: nn.Module, example: Tensor, calib: Batches, budgets: Sequence[float] = (0.6, 0.4)
) -> list[dict]:
    """Which groups ``inn.prune``'s allocation narrows: at each parameter budget (fraction
    kept), the plan ``inn.prune`` makes with ``calib`` (BatchNorm kept, output sensitivity on
    the data), and per role the share of channels kept, mean and range over its groups."""
    imodel = inn.convert(model, example, fold_batchnorm=False)
    full = {g.name: g.full_size for g in imodel.resizable_groups}
    out = []
    for budget in budgets:
        plan = imodel.plan(inn.Budget("params", budget), data=list(calib))
        for role in ROLES:
            kept = [w / full[n] for n, w in plan.widths.items() if group_role(model, n) == role]
            if kept:
                out.append({"budget": budget, "role": role, "groups": len(kept),
                            "mean_kept": sum(kept) / len(kept), "min_kept": min(kept),
                            "max_kept": max(kept)})  # fmt: skip
    return out


def allocation_markdown(rows: Sequence[dict]) -> str:
    lines = [
        "## Which groups inn.prune narrows",
        "",
        "The widths `inn.prune` plans with the calibration images at a parameter budget: share of",
        "each group's channels kept, mean [min, max] over the groups of a role.",
        "",
        "| parameters kept | role | groups | channels kept |",
        "|---:|---|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['budget']:.0%} | {r['role']} | {r['groups']} | {r['mean_kept']:.0%} "
            f"[{r['min_kept']:.0%}, {r['max_kept']:.0%}] |"
        )
    return "\n".join(lines) + "\n"


def reestimation_floor(model: nn.Module, calib: Batches, test: Batches) -> float:
    """The relative MSE of the logits that re-estimating every BatchNorm of the unpruned
    ``model`` on ``calib`` causes by itself (the floor under every re-estimated row)."""
    again = copy.deepcopy(model)
    inn.reestimate_batchnorm(again, calib)
    return _relative_mse(_logits(again, test), _logits(model, test))


def markdown(
    rows: Sequence[GroupError], title: str, command: str, floor: float | None = None
) -> str:
    """The results as markdown: per role and width, mean relative MSE (after / before
    re-estimation), mean accuracy and wins of each method; then every group. ``floor``: see
    :func:`reestimation_floor`."""
    lines = [
        f"# {title}",
        "",
        f"Command: `{command}`",
        "",
        "One group narrowed at a time, the others at full width. Relative MSE of the logits on",
        "the test digits against the full-width network, mean over the groups of a role; in",
        "brackets before BatchNorm re-estimation. Accuracy (%) after re-estimation. Wins: groups",
        "where that method's relative MSE (after re-estimation) is lower.",
        "",
        *(
            [
                f"Re-estimating the statistics of the unpruned network alone gives a relative MSE of "
                f"{floor:.4f}: the floor under the re-estimated numbers.",
                "",
            ]
            if floor is not None
            else []
        ),
        "| role | groups | width | resampled MSE | selected MSE | resampled acc | selected acc "
        "| resampled wins | selected wins |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in summary(rows):
        lines.append(
            f"| {e['role']} | {e['groups']} | {e['fraction']:.0%} "
            f"| {e['resampled_mse']:.4f} ({e['resampled_mse_before_bn']:.4f}) "
            f"| {e['selected_mse']:.4f} ({e['selected_mse_before_bn']:.4f}) "
            f"| {100 * e['resampled_accuracy']:.1f} | {100 * e['selected_accuracy']:.1f} "
            f"| {e['resampled_wins']} | {e['selected_wins']} |"
        )
    lines += [
        "",
        "Every group (relative MSE after re-estimation; accuracy %):",
        "",
        "| group | role | channels | width | resampled MSE | selected MSE | resampled acc "
        "| selected acc |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r.group, r.fraction, r.method): r for r in rows}
    for group, fraction in dict.fromkeys((r.group, r.fraction) for r in rows):
        a, b = by[(group, fraction, "resampled")], by[(group, fraction, "selected")]
        lines.append(
            f"| {group} | {a.role} | {a.full_size} | {a.width} | {a.relative_mse:.4f} "
            f"| {b.relative_mse:.4f} | {100 * a.accuracy:.1f} | {100 * b.accuracy:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[GroupError], path: Path) -> None:
    """Mean relative MSE (after re-estimation) against the width, one panel per role."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = summary(rows)
    roles = [r for r in ROLES if any(e["role"] == r for e in entries)]
    fig, axes = plt.subplots(1, len(roles), figsize=(3.2 * len(roles), 3.0), squeeze=False)
    for ax, role in zip(axes[0], roles, strict=True):
        mine = sorted((e for e in entries if e["role"] == role), key=lambda e: e["fraction"])
        x = [100 * e["fraction"] for e in mine]
        for method, style in zip(METHODS, ("o-", "s--"), strict=True):
            ax.plot(x, [e[f"{method}_mse"] for e in mine], style, label=method)
        ax.set_yscale("log")
        ax.set_title(f"{role} ({mine[0]['groups']} groups)", fontsize=9)
        ax.set_xlabel("width of the group (%)")
        ax.invert_xaxis()
    axes[0][0].set_ylabel("relative MSE of the logits")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2", help="a zoo model (MNIST digits)")
    parser.add_argument("--out", type=Path, default=Path("results/group-errors-mobilenet_v2"))
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.75, 0.5, 0.25])
    parser.add_argument("--calib-size", type=int, default=256)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    from innlab.experiments.workloads import mnist_workload

    workload = mnist_workload(args.model, calib_size=args.calib_size)
    model = workload.model.eval()
    example = workload.calib[0][0][:2]
    clock = time.perf_counter()
    rows = group_errors(
        model, example, workload.calib, workload.test, fractions=args.fractions, progress=True
    )
    seconds = time.perf_counter() - clock
    floor = reestimation_floor(model, workload.calib, workload.test)
    allocation = allocation_by_role(model, example, workload.calib)
    command = (
        f"python -m innlab.experiments.group_errors --model {args.model} --out {args.out} "
        f"--fractions {' '.join(str(f) for f in args.fractions)} --calib-size {args.calib_size}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "command": command,
                "workload": workload.name,
                "seconds": seconds,
                "full_accuracy": accuracy(model, workload.test),
                "reestimation_floor": floor,
                "rows": [asdict(r) for r in rows],
                "summary": summary(rows),
                "allocation": allocation,
            },
            indent=1,
        )
    )
    title = f"Per-group errors, resampled vs selected: {workload.name}"
    text = markdown(rows, title, command, floor)
    (args.out / "results.md").write_text(f"{text}\n{allocation_markdown(allocation)}")
    plot(rows, args.out / "errors.png")
    log.info("wrote %s in %.0f s", args.out, seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
