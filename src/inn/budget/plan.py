"""Budgets in parameters, MACs or measured latency, and the plan of widths that meets one."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from inn.budget.allocate import Table, allocate, level_widths, one_fraction_widths, refine
from inn.budget.cost import counted_costs
from inn.budget.latency import MEASURED_TOLERANCE, export_ratio, latency_fit, meet_measured
from inn.budget.polynomial import CostModel
from inn.budget.rounding import device_round_to
from inn.budget.sensitivity import (
    OUTPUT_FRACTIONS,
    SYNTHETIC_SAMPLES,
    Sensitivity,
    magnitude_table,
    output_errors,
    weight_errors,
)
from inn.errors import InnError
from inn.layers import NarrowStatistics

if TYPE_CHECKING:
    from inn.convert.model import IntegralModel

__all__ = [
    "KINDS", "SENSITIVITIES", "Budget", "Plan", "as_budget", "cost_model", "has_width_statistics",
    "plan",
]  # fmt: skip

KINDS = ("params", "macs", "latency")
SENSITIVITIES = ("auto", "outputs", "weights", "uniform", "magnitude")
AUTO_MAX_MACS = 5e10  # synthetic forward passes "auto" may spend without data (a few CPU seconds)
# data-free sensitivity tables per model: {method: (parameter versions, table)}
_SENSITIVITIES: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[Any, Sensitivity]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Budget:
    """A cost target: ``kind`` in ``("params", "macs", "latency")``, as a ``fraction`` of the
    full model's cost or an ``absolute`` count (parameters, MACs at the example input, or
    seconds per batch). Latency is measured on ``device`` at ``batch_size``. The widths are
    rounded for ``device`` running ``dtype`` (default: the model's) unless the plan is given
    ``round_to`` (see :func:`~inn.budget.device_round_to`).

    ``Budget("macs", 0.5)`` keeps half the MACs; a mapping ``{"macs": 0.5}`` means the same."""

    kind: str
    fraction: float | None = None
    absolute: float | None = None
    device: str = "cpu"
    batch_size: int = 1
    dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InnError(f"unknown budget kind {self.kind!r}; choose one of {KINDS}")
        if (self.fraction is None) == (self.absolute is None):
            raise InnError("a Budget needs exactly one of fraction=... or absolute=...")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise InnError(f"a budget fraction must be in (0, 1], got {self.fraction!r}")
        if self.absolute is not None and not self.absolute > 0:
            raise InnError(f"an absolute budget must be positive, got {self.absolute!r}")
        if self.batch_size < 1:
            raise InnError(f"batch_size must be >= 1, got {self.batch_size}")


def as_budget(budget: Budget | Mapping[str, float]) -> Budget:
    """A :class:`Budget` from itself or from ``{kind: fraction}``."""
    if isinstance(budget, Budget):
        return budget
    if isinstance(budget, Mapping):
        if len(budget) != 1:
            raise InnError(
                f"a budget has one target, got {sorted(budget)}: plan each separately, or keep "
                "the one that binds"
            )
        ((kind, value),) = budget.items()
        if kind not in KINDS:
            raise InnError(f"unknown budget kind {kind!r}; choose one of {KINDS}")
        if isinstance(value, (int, float)) and value > 1:
            raise InnError(
                f"{{{kind!r}: {value}}} reads as a fraction of the full model; for an absolute "
                f"target use inn.Budget({kind!r}, absolute={value})"
            )
        return Budget(kind, fraction=value)
    raise InnError(
        f"budget must be an inn.Budget or {{kind: fraction}}, got {type(budget).__name__}"
    )


@dataclass(frozen=True)
class Plan:
    """Widths per group that meet a budget, and what they cost (without changing the model)."""

    widths: dict[str, int]
    kind: str
    target: float
    predicted: float
    full: float
    sensitivity: str
    costs: dict[str, float] = field(default_factory=dict)
    measured: float | None = None
    """For a latency budget: the export's measured latency over the full width's export."""

    @property
    def fraction(self) -> float:
        """Predicted cost as a fraction of the full-width model's."""
        return self.predicted / self.full


def cost_model(
    imodel: IntegralModel, kind: str, *, device: str = "cpu", batch_size: int = 1
) -> CostModel:
    """The cost of ``imodel`` for ``kind`` as a function of its group widths: ``"params"``,
    ``"macs"``, ``"activations"`` (counted, :func:`~inn.budget.cost.counted_costs`) or
    ``"latency"`` (fitted on ``device`` at ``batch_size``, :func:`~inn.budget.latency_fit`);
    computed once per model."""
    if kind in ("params", "macs", "activations"):
        return counted_costs(imodel)[kind]
    if kind != "latency":
        raise InnError(f"unknown budget kind {kind!r}; choose one of {KINDS}")
    return latency_fit(imodel, device=device, batch_size=batch_size).model


def _uniform_tables(imodel: IntegralModel) -> Sensitivity:
    """Every group loses the same fraction: error = fraction removed (same curve everywhere)."""
    widths = {g.name: np.array([0.0, g.full_size]) for g in imodel.resizable_groups}
    errors = {g.name: np.array([1.0, 0.0]) for g in imodel.resizable_groups}
    return Sensitivity(widths, errors, "uniform")


def sensitivity_of(imodel: IntegralModel, method: str, data: Iterable | None) -> Sensitivity:
    """The sensitivity table; data-free ones are memoised until a node value changes."""
    if method == "uniform":
        return _uniform_tables(imodel)
    if method == "magnitude":
        return magnitude_table(imodel)
    if method not in ("outputs", "weights"):
        raise InnError(f"unknown sensitivity {method!r}; choose one of {SENSITIVITIES}")
    if data is not None:
        return output_errors(imodel, data)
    values = tuple((id(p), p._version) for p in imodel.parameters())
    cache = _SENSITIVITIES.setdefault(imodel, {})
    if cache.get(method, (None,))[0] != values:
        table = output_errors(imodel) if method == "outputs" else weight_errors(imodel)
        cache[method] = (values, table)
    return cache[method][1]


def plan(
    imodel: IntegralModel,
    budget: Budget | Mapping[str, float],
    *,
    sensitivity: str | Sensitivity = "auto",
    data: Iterable | None = None,
    round_to: int | None = None,
    min_width: int = 1,
    measure: bool = True,
) -> Plan:
    """Widths per resizable group that meet ``budget`` with the least estimated damage.

    Args:
        budget: the target (see :class:`Budget`).
        sensitivity: ``"outputs"`` (the output change when each group alone is narrowed, on
            ``data`` or, without data, on seeded synthetic inputs), ``"weights"`` (data-free
            and fastest: the error of rebuilding each group's weights from fewer samples),
            ``"auto"`` (default: ``"outputs"`` with ``data``; without data ``"uniform"`` on
            a model trained with random widths (it keeps width statistics), else ``"outputs"``
            on synthetic inputs where those forward passes cost at most ``AUTO_MAX_MACS``
            multiply-accumulates, else ``"weights"``),
            ``"uniform"`` (every group keeps the same fraction; the gap its rounding leaves
            is then filled group by group, except on a model with width statistics and no
            ``data``: there every group keeps the channel count of one fraction, the widths
            its statistics describe), ``"magnitude"`` (data-free,
            no forward pass: one threshold on the channels' weight magnitudes normalised per
            group, :mod:`inn.budget.magnitude`), or a precomputed
            :class:`~inn.budget.Sensitivity`.
        data: calibration batches for ``sensitivity="outputs"``.
        round_to: every width a multiple of this (or full); default: the multiple the budget's
            device runs fast (:func:`~inn.budget.device_round_to`: 8 for 16-bit floats on CUDA,
            4 for float32 on CUDA, 1 on the CPU), except on a twin's one-fraction widths (its
            width statistics describe those exact channel counts) and where the multiple would
            leave the plan more than 1 % under its budget (the budget comes first).
        min_width: no group narrower than this.
        measure: for a latency budget (a ``fraction``), time the plan's export against the
            full width's and, where it misses the budget, plan again for a corrected target
            (:func:`~inn.budget.latency.meet_measured`: up to 5 plans, each timed in about a
            second at batch 1 on a CPU, tens of seconds at batch 32); ``Plan.measured`` is
            the fraction measured.
    """
    budget = as_budget(budget)
    if round_to is not None and (
        isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1
    ):
        raise InnError(f"round_to must be a positive int, got {round_to!r}")
    groups = imodel.groups
    cost = cost_model(imodel, budget.kind, device=budget.device, batch_size=budget.batch_size)
    full = np.array([g.full_size for g in groups], dtype=float)
    resizable = np.array([g.resizable for g in groups])
    full_cost = cost(full)
    target = budget.absolute if budget.absolute is not None else budget.fraction * full_cost
    if not resizable.any() and target < full_cost:
        raise InnError("this model has no resizable channel group (see IntegralModel.groups)")
    table = sensitivity if isinstance(sensitivity, Sensitivity) else None
    method = table.method if table is not None else sensitivity
    # the statistics a random-width twin keeps describe every group at one fraction (width
    # buckets, at points_at's channel counts): with no data to measure another mix, any other
    # mix, even a rounding gap filled group by group, is a width they do not describe
    twin_without_data = data is None and has_width_statistics(imodel)
    if method == "auto":
        method = _auto_sensitivity(imodel, data, int(resizable.sum()), twin_without_data)
    one_fraction = method == "uniform" and twin_without_data
    if round_to is not None:
        multiple = finest = round_to
    else:
        # the device's multiple is a default, the budget is not: where it leaves the plan more
        # than 1 % under its target (or cannot meet it), the plan is made unrounded; nor is a
        # twin's one fraction rounded (its statistics describe these exact channel counts)
        dtype = budget.dtype or next((p.dtype for p in imodel.parameters()), None)
        multiple = 1 if one_fraction else device_round_to(budget.device, dtype or torch.float32)
        finest = 1

    narrowest = np.full_like(full, min_width)  # raised below where the model runs no narrower

    def lowest_at(multiple: int) -> np.ndarray:
        return np.where(resizable, np.minimum(full, np.maximum(narrowest, multiple)), full)

    # a latency plan is timed (below): the measurement, not the fitted model, says what it reaches
    timed = budget.kind == "latency" and budget.fraction is not None and measure
    if not timed:
        _check_floor(imodel, target, cost(lowest_at(finest)), min_width, round_to, budget.kind)
    table = table or sensitivity_of(imodel, method, data)
    names = [g.name for g in groups]
    tw = [table.widths.get(n, np.array([f])) for n, f in zip(names, full, strict=True)]
    te = [table.errors.get(n, np.array([0.0])) for n in names]
    narrowest = np.maximum(
        narrowest, [table.widths[n][0] if n in table.widths else 0 for n in names]
    )
    lowest = lowest_at(finest)

    def widths_at(target: float, multiple: int) -> np.ndarray:
        lowest = lowest_at(multiple)
        if one_fraction:
            return one_fraction_widths(cost, target, full, resizable, lowest, multiple)
        if method in ("uniform", "magnitude"):
            levels = Table(tw, te)
            widths = level_widths(cost, target, full, resizable, lowest, multiple, levels)
            return refine(cost, target, widths, lowest, resizable, multiple, full, levels)
        return allocate(cost, target, full, resizable, tw, te, round_to=multiple,
                        min_width=narrowest)  # fmt: skip

    def widths_for(target: float) -> np.ndarray:
        if multiple == finest:
            return widths_at(target, multiple)
        try:
            widths = widths_at(target, multiple)
            if 0.99 * target <= cost(widths.astype(float)) <= target:
                return widths
        except InnError:
            pass
        return widths_at(target, finest)

    def named(widths: np.ndarray) -> dict[str, int]:
        return {g.name: int(w) for g, w in zip(groups, widths, strict=True) if g.resizable}

    measured = None
    if timed:
        # a fitted latency model is off by up to a third on a CPU (depthwise layers, channel
        # counts off the vector width): the plan is timed and, where it misses, corrected
        floor = cost(lowest) / full_cost
        widths, measured = meet_measured(
            budget.fraction,
            lambda fraction: widths_for(max(fraction, floor) * full_cost),
            lambda w: export_ratio(
                imodel, named(w), device=budget.device, batch_size=budget.batch_size,
                rounds=7 if budget.batch_size < 8 else 3,
            ),
        )  # fmt: skip
        _check_measured(imodel, budget, measured)
    else:
        widths = widths_for(target)
        _check_reached(imodel, target, cost(widths.astype(float)), cost(lowest), budget.kind)
    costs = {k: cost_model(imodel, k)(widths.astype(float)) for k in ("params", "macs")}
    return Plan(
        named(widths), budget.kind, float(target), cost(widths.astype(float)), full_cost, method,
        costs, measured,
    )  # fmt: skip


def has_width_statistics(imodel: nn.Module) -> bool:
    """Whether a normalisation of ``imodel`` keeps statistics recorded at narrow widths (width
    buckets: a model trained with random widths, :mod:`inn.layers.width_statistics`)."""
    return any(isinstance(m, NarrowStatistics) and m.has_width_statistics for m in imodel.modules())


def _auto_sensitivity(
    imodel: IntegralModel, data: Iterable | None, groups: int, twin_without_data: bool
) -> str:
    """``"outputs"`` with data; without, ``"uniform"`` where the model keeps width statistics
    (they describe no other mix: at half the MACs the ranked plans of the twins in
    ``docs/notebook.md``'s "A twin's budget with no data" kept 13.9 / 40.6 %, one fraction
    92.9 / 74.0), else ``"outputs"`` on synthetic inputs where those forward passes cost at
    most ``AUTO_MAX_MACS`` (seconds on a CPU), else ``"weights"``."""
    if data is not None:
        return "outputs"
    if twin_without_data:
        return "uniform"
    example = imodel.example_inputs[0] if imodel.example_inputs else None
    batch = example.shape[0] if example is not None and example.dim() > 0 else 1
    macs = cost_model(imodel, "macs")(np.array([float(g.full_size) for g in imodel.groups]))
    passes = groups * len(OUTPUT_FRACTIONS)  # the fractions below full, and one channel
    work = macs / max(batch, 1) * SYNTHETIC_SAMPLES * passes
    return "outputs" if work <= AUTO_MAX_MACS else "weights"


def _check_floor(
    imodel: IntegralModel, target: float, floor: float, min_width: int, round_to: int | None,
    kind: str,
) -> None:  # fmt: skip
    if target < floor:
        narrowest = f"min_width={min_width}" + (f", round_to={round_to}" if round_to else "")
        raise InnError(
            f"the {kind} budget {target:.6g} is below the floor {floor:.6g}: the cost with every "
            f"resizable group at its narrowest width ({narrowest}). {_pinned(imodel)}"
        )


def _check_measured(imodel: IntegralModel, budget: Budget, measured: float) -> None:
    """A latency plan whose export measures slower than the budget allows is an error."""
    if measured > budget.fraction + MEASURED_TOLERANCE:
        raise InnError(
            f"cannot meet the latency budget {budget.fraction:.2f} on {budget.device} at batch "
            f"{budget.batch_size}: the fastest plan timed runs at {measured:.2f} of the full "
            f"width's latency. {_pinned(imodel)}"
        )


def _check_reached(
    imodel: IntegralModel, target: float, reached: float, floor: float, kind: str
) -> None:
    """A plan that misses its target by more than 1 % is an error, never a silent success."""
    if reached > target * 1.01:
        raise InnError(
            f"cannot meet the {kind} budget {target:.6g}: the closest plan costs {reached:.6g} "
            f"(floor {floor:.6g}). {_pinned(imodel)}"
        )


def _pinned(imodel: IntegralModel) -> str:
    """The pinned groups that hold the floor up, widest first, and the way out."""
    pinned = sorted((g for g in imodel.groups if not g.resizable), key=lambda g: -g.full_size)
    listed = "; ".join(f"{g.name} ({g.full_size} channels: {g.reason})" for g in pinned[:5])
    return (
        f"The rest is in layers outside the groups and in {len(pinned)} pinned group(s), widest: "
        f"{listed}. Raise the budget, or teach the analysis the layers that pin them "
        "(inn.register_channel_rule)."
    )
