"""A latency model fitted to measured timings of the exported model at several widths.

Latency is not a count: on a CPU at small batch a layer costs a fixed overhead plus a part that
grows with its MACs and with the size of its output (memory traffic). The model is
``seconds = t0 + a * MACs(w) + b * activations(w)``, fitted by non-negative least squares to the
median latency of the exported model at a few uniform widths and a few seeded random
allocations, each timed with interleaved repeats. It has the form of the other cost models, so
the same allocation meets it.
"""

from __future__ import annotations

import operator
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from inn.budget.cost import counted_costs
from inn.budget.polynomial import CostModel

if TYPE_CHECKING:
    from inn.convert.model import IntegralModel

__all__ = [
    "LatencyFit", "export_ratio", "latency_fit", "latency_ratio", "measure_latency", "meet_measured",
]  # fmt: skip

# uniform widths timed for the fit; the low one anchors the fixed cost, which the plans of tight
# budgets depend on (without it a plan modelled at 40 % of MobileNetV2's latency measured 13 %)
_FRACTIONS = (1.0, 0.75, 0.5, 0.3, 0.12)
_RANDOM_CONFIGS = 4
MEASURED_PLANS = 5
"""Plans timed, at most, for one latency budget (the first, then corrected ones)."""
MEASURED_TOLERANCE = 0.03
"""How far a measured plan may be from its goal, as a fraction of the full latency (about the
spread of a median of interleaved timings on a quiet CPU)."""
# fitted latency models per model, by (device, batch size)
_FITS: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[str, int], LatencyFit]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class LatencyFit:
    """The fitted model and the measurements behind it (seconds per batch)."""

    model: CostModel
    measured: list[float]
    predicted: list[float]
    seconds: float


def measure_latency(
    model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], repeats: int = 15
) -> float:
    """Median seconds of one forward pass (after warm-up; synchronised on CUDA)."""
    cuda = inputs[0].is_cuda
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(*inputs)
            if cuda:
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - start)
    return float(np.median(times))


def _batch(imodel: IntegralModel, device: str, batch_size: int) -> tuple[torch.Tensor, ...]:
    return tuple(
        x[:1].expand(batch_size, *x.shape[1:]).contiguous().to(device)
        for x in imodel.example_inputs
    )


def latency_ratio(
    model: torch.nn.Module,
    reference: torch.nn.Module,
    inputs: tuple[torch.Tensor, ...],
    rounds: int = 15,
) -> float:
    """Median over ``rounds`` of ``model``'s time / ``reference``'s, the two timed one after the
    other in every round (:func:`measure_latency` of 3 passes each), so that a machine that
    slows down or speeds up during the measurement moves both alike."""
    ratios = [
        measure_latency(model, inputs, repeats=3) / measure_latency(reference, inputs, repeats=3)
        for _ in range(rounds)
    ]
    return float(np.median(ratios))


def export_ratio(
    imodel: IntegralModel,
    widths: Mapping[str, int],
    *,
    device: str = "cpu",
    batch_size: int = 1,
    rounds: int = 7,
) -> float:
    """Measured latency of ``imodel`` exported at ``widths`` over its full width's export, on
    ``device`` at ``batch_size`` (interleaved, :func:`latency_ratio`); its widths are kept."""
    inputs = _batch(imodel, device, batch_size)
    with imodel.widths_kept():
        imodel.resize(widths={g.name: g.full_size for g in imodel.resizable_groups})
        full = imodel.export().to(device).eval()
        imodel.resize(widths=dict(widths))
        small = imodel.export().to(device).eval()
    return latency_ratio(small, full, inputs, rounds)


def meet_measured(
    goal: float,
    allocate: Callable[[float], np.ndarray],
    measure: Callable[[np.ndarray], float],
    *,
    plans: int = MEASURED_PLANS,
    tolerance: float = MEASURED_TOLERANCE,
) -> tuple[np.ndarray, float]:
    """Widths whose *measured* cost fraction meets ``goal`` where the model that plans them is
    off: a root search on the modelled target ``t``.

    ``allocate(t)`` plans for the modelled fraction ``t`` (first ``goal``) and ``measure``
    times the plan (a fraction of the full cost). Until a plan measures within ``tolerance``
    of ``goal``, the next ``t`` is ``t`` scaled by ``goal / measured`` until plans on both sides
    of the goal bracket it, then the secant through the bracket's ends (false position, with
    the Illinois rule: an end kept twice has its miss halved, so a convex cost converges from
    both sides); up to ``plans`` plans. Returns the plan measured closest under ``goal +
    tolerance``, else the one measured fastest, and its measurement.
    """
    target, tried = goal, []
    ends: dict[bool, list[float]] = {}  # above the goal? -> [modelled target, measured - goal]
    kept = None  # the side of the bracket replaced last
    for _ in range(plans):
        widths = allocate(target)
        measured = measure(widths)
        tried.append((measured, widths))
        if abs(measured - goal) <= tolerance:
            break
        side = measured > goal
        ends[side] = [target, measured - goal]
        if kept == side and (not side) in ends:
            ends[not side][1] /= 2  # the other end was kept twice (Illinois)
        kept = side
        if len(ends) == 2:
            (t0, r0), (t1, r1) = ends[False], ends[True]
            following = t0 - r0 * (t1 - t0) / (r1 - r0)
        else:
            following = min(1.0, target * goal / max(measured, 1e-9))
        if abs(following - target) < 1e-4:  # the plan would not change
            break
        target = following
    within = [t for t in tried if t[0] <= goal + tolerance]
    first = operator.itemgetter(0)
    measured, widths = max(within, key=first) if within else min(tried, key=first)
    return widths, measured


def latency_fit(
    imodel: IntegralModel, *, device: str = "cpu", batch_size: int = 1, repeats: int = 15
) -> LatencyFit:
    """The latency model of ``imodel`` on ``device`` at ``batch_size``, fitted to timings of its
    export at several widths on first use, then kept while the model lives (``plan`` and
    ``cost`` reuse it)."""
    fits = _FITS.setdefault(imodel, {})
    key = (str(device), batch_size)
    if key not in fits:
        fits[key] = _time_and_fit(imodel, device=device, batch_size=batch_size, repeats=repeats)
    return fits[key]


def _time_and_fit(
    imodel: IntegralModel,
    *,
    device: str = "cpu",
    batch_size: int = 1,
    repeats: int = 15,
    seed: int = 0,
) -> LatencyFit:
    """Time the exported model at several widths on ``device`` and fit the latency model."""
    start = time.perf_counter()
    groups = imodel.groups
    full = np.array([g.full_size for g in groups], dtype=float)
    resizable = np.array([g.resizable for g in groups])
    rng = np.random.default_rng(seed)
    configs = [np.where(resizable, np.maximum(1, np.round(f * full)), full) for f in _FRACTIONS]
    for _ in range(_RANDOM_CONFIGS):
        f = rng.uniform(0.12, 1.0, size=len(full))
        configs.append(np.where(resizable, np.maximum(1, np.round(f * full)), full))
    inputs = _batch(imodel, device, batch_size)
    models = []
    with imodel.widths_kept():
        for widths in configs:
            imodel.resize(
                widths={g.name: int(w) for g, w in zip(groups, widths, strict=True) if g.resizable}
            )
            models.append(imodel.export().to(device).eval())
    rounds = [[] for _ in models]
    for _ in range(3):  # interleaved, so a slow spell of the machine hits every config alike
        for times, model in zip(rounds, models, strict=True):
            times.append(measure_latency(model, inputs, repeats))
    measured = [float(np.median(t)) for t in rounds]
    counts = counted_costs(imodel)
    macs, acts = counts["macs"], counts["activations"]
    features = np.array([[1.0, macs(w), acts(w)] for w in configs])
    scale = features.max(0)
    coef = _nonnegative_lstsq(features / scale, np.array(measured)) / scale
    model = macs.scaled(coef[1], coef[0]).plus(acts.scaled(coef[2]))
    predicted = [model(w) for w in configs]
    return LatencyFit(model, measured, predicted, time.perf_counter() - start)


def _nonnegative_lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with non-negative coefficients (active set over 3 columns: all subsets)."""
    best, best_residual = np.zeros(a.shape[1]), float(np.square(b).sum())
    cols = a.shape[1]
    for mask in range(1, 2**cols):
        keep = [c for c in range(cols) if mask >> c & 1]
        x, *_ = np.linalg.lstsq(a[:, keep], b, rcond=None)
        if (x < 0).any():
            continue
        full = np.zeros(cols)
        full[keep] = x
        residual = float(np.square(a @ full - b).sum())
        if residual < best_residual:
            best, best_residual = full, residual
    return best
