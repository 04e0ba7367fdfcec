"""How much each channel group suffers when it is sampled at fewer points.

Two measures, both as a table ``errors[g]`` over a few widths per group (interpolated between):

* :func:`weight_errors` (data-free, no forward pass): the relative L2 error of reconstructing
  the group's weight functions from ``n`` samples, i.e. sampling at ``n`` uniform points and
  interpolating back to the ``N`` lattice nodes. It is the integration error of the layers'
  operators when their inputs are unknown: zero at full width, large where the weights vary
  fast along the channel axis.
* :func:`output_errors`: the network's output change (squared, relative to the output's
  energy) when the group alone is narrowed, on calibration batches or, without data, on
  seeded synthetic inputs of the example's shape.
* :func:`magnitude_table` (data-free, no forward pass): the channels' weight magnitudes,
  normalised within each group (:mod:`inn.budget.magnitude`), for one threshold across groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from inn.budget.magnitude import channel_scores, keep_strongest, lamp_scores
from inn.data import batched
from inn.errors import InnError, first_line, warn
from inn.numerics import resampling_matrix
from inn.outputs import flat_output

if TYPE_CHECKING:
    from inn.convert.model import IntegralModel

__all__ = [
    "FRACTIONS", "OUTPUT_FRACTIONS", "SYNTHETIC_SAMPLES", "Sensitivity", "magnitude_table",
    "output_errors", "weight_errors",
]  # fmt: skip

FRACTIONS = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125)
OUTPUT_FRACTIONS = (1.0, 0.75, 0.5, 0.25, 0.125)  # each a forward pass per group
SYNTHETIC_SAMPLES = 16
_MAX_COLUMNS = 512  # columns of a wide tensor used to estimate its error (seeded subset)


@dataclass(frozen=True)
class Sensitivity:
    """Per group name: widths (ascending, ending at full width) and the error at each. A
    table starts at the narrowest width a plan may give the group (one channel, unless the
    model does not run narrower: :func:`output_errors`)."""

    widths: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    method: str

    def error(self, name: str, width: float) -> float:
        return float(np.interp(width, self.widths[name], self.errors[name]))


def _levels(full: int, fractions: Sequence[float]) -> np.ndarray:
    """The widths a table is measured at: ``fractions`` of ``full``, full width, and one channel.
    The narrowest width is always measured: below its lowest entry a table is flat, and an
    allocation would see every channel under it as free to remove."""
    return np.unique([1, *(max(1, min(full, round(f * full))) for f in (*fractions, 1.0))])


@dataclass(frozen=True)
class GroupValues:
    """Every continuous tensor's values along one group's axis, side by side: ``(N, columns)``
    (float32; columns of wide tensors subsampled, each tensor scaled to unit norm)."""

    values: Tensor
    closed: bool


def group_values(imodel: IntegralModel, seed: int = 0) -> dict[str, GroupValues]:
    """Per resizable group of more than one channel, :class:`GroupValues`."""
    generator = torch.Generator().manual_seed(seed)
    columns: dict[str, list[Tensor]] = defaultdict(list)
    closed: dict[str, bool] = {}
    for name, rows in imodel.tensor_segments():
        part = imodel.partition(name)
        if part.full_size == 1:
            continue
        flat = rows.float().cpu()
        if flat.shape[1] > _MAX_COLUMNS:
            pick = torch.randperm(flat.shape[1], generator=generator)
            flat = flat[:, pick[:_MAX_COLUMNS]]
        norm = flat.norm()
        if norm > 0:
            columns[name].append(flat / norm)
            closed[name] = part.closed
    return {n: GroupValues(torch.cat(c, 1), closed[n]) for n, c in columns.items()}


def reconstruction_error(group: GroupValues | None, width: int) -> float:
    """Relative L2 error of the group's values rebuilt from ``width`` uniform samples: sampled
    at ``width`` points, then interpolated back to the ``N`` lattice nodes."""
    if group is None:
        return 0.0
    full = group.values.shape[0]
    if width >= full:
        return 0.0
    down, _ = resampling_matrix([((full,), (width,))], closed=group.closed)
    up, _ = resampling_matrix([((width,), (full,))], closed=group.closed)
    rebuilt = up @ (down @ group.values)
    return float((rebuilt - group.values).norm() / group.values.norm())


def weight_errors(imodel: IntegralModel, fractions: Sequence[float] = FRACTIONS) -> Sensitivity:
    """Data-free sensitivity: squared relative reconstruction error per group and width."""
    values = group_values(imodel)
    widths, errors = {}, {}
    for g in imodel.resizable_groups:
        levels = _levels(g.full_size, fractions)
        widths[g.name] = levels
        group = values.get(g.name)
        errors[g.name] = np.array([reconstruction_error(group, int(n)) ** 2 for n in levels])
    return Sensitivity(widths, errors, "weights")


def _synthetic(
    imodel: IntegralModel, count: int = SYNTHETIC_SAMPLES, seed: int = 0
) -> list[tuple[Tensor, ...]]:
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for x in imodel.example_inputs:
        shape = (count, *x.shape[1:])
        inputs.append(torch.randn(shape, generator=generator, dtype=x.dtype))
    return [tuple(inputs)]


def output_errors(
    imodel: IntegralModel,
    data: Iterable | None = None,
    fractions: Sequence[float] = OUTPUT_FRACTIONS,
    max_samples: int = 64,
    samplings: Sequence[str] = ("resample",),
) -> Sensitivity:
    """Output change when each group alone is narrowed: ``|y_n - y|^2 / |y|^2`` on ``data``
    (the first ``max_samples`` inputs of ``(inputs, targets)`` or ``inputs`` batches) or on
    ``SYNTHETIC_SAMPLES`` seeded standard-normal inputs. The model's widths and trained points
    are restored afterwards.

    ``samplings``: how the narrowed group gets its channels, ``"resample"`` (uniform points)
    and / or ``"select"`` (its strongest original channels,
    :func:`~inn.budget.magnitude.keep_strongest`); with both, the error is the lower of the
    two, as for an export that may use either (``inn.prune(sampling="auto")``)."""
    unknown = set(samplings) - {"resample", "select"}
    if not samplings or unknown:
        raise InnError(f"samplings must be some of ('resample', 'select'), got {samplings!r}")
    batches = _synthetic(imodel) if data is None else _first_inputs(data, max_samples)
    device = next(imodel.parameters()).device
    batches = [tuple(x.to(device) for x in b) for b in batches]
    full = {g.name: g.full_size for g in imodel.resizable_groups}
    scores = channel_scores(imodel) if "select" in samplings else {}
    widths, errors = {}, {}
    with imodel.widths_kept():
        imodel.resize(widths=full)
        with torch.no_grad():
            reference = [flat_output(imodel(*b)) for b in batches]
            energy = max(sum(float(r.square().sum()) for r in reference), 1e-30)

            def error() -> float:
                return (
                    sum(
                        float((flat_output(imodel(*b)) - r).square().sum())
                        for b, r in zip(batches, reference, strict=True)
                    )
                    / energy
                )

            def measure(name: str, n: int) -> float:
                imodel.resize(widths={name: n})
                measured = [error()] if "resample" in samplings else []
                if "select" in samplings and name in scores and n < full[name]:
                    keep_strongest(imodel, name, scores[name])
                    measured.append(error())
                return min(measured, default=0.0)

            for g in imodel.resizable_groups:
                levels = _levels(g.full_size, fractions)
                values = np.zeros(len(levels))
                runs = len(levels) - 1  # the model runs from levels[runs] up
                for i in range(len(levels) - 1, -1, -1):
                    try:
                        values[i] = measure(g.name, int(levels[i]))
                    except Exception as err:  # the model's own code refuses this width
                        if i == len(levels) - 1:
                            raise
                        warn(
                            f"inn: the model does not run with group {g.name!r} at "
                            f"{int(levels[i])} channels ({type(err).__name__}: {first_line(err)})"
                            f"; plans keep it at {int(levels[runs])} channels or more"
                        )
                        break
                    runs = i
                imodel.resize(widths={g.name: g.full_size})
                widths[g.name], errors[g.name] = levels[runs:], values[runs:]
    return Sensitivity(widths, errors, "outputs")


def _first_inputs(data: Iterable, limit: int) -> list[tuple[Tensor, ...]]:
    out, seen = [], 0
    for item in batched(data):
        x = item if isinstance(item, Tensor) else item[0]
        take = min(len(x), limit - seen)
        out.append((x[:take],))
        seen += take
        if seen >= limit:
            break
    return out


def smallest_widths(imodel: IntegralModel, tolerance: float) -> dict[str, int]:
    """Per resizable group, the fewest uniform points whose relative reconstruction error of the
    group's weight functions (see :func:`weight_errors`) is at most ``tolerance`` (bisection:
    the error is taken as non-increasing in the width)."""
    values = group_values(imodel)
    out = {}
    for g in imodel.resizable_groups:
        lo, hi = 1, g.full_size  # the error at full width is 0
        while lo < hi:
            mid = (lo + hi) // 2
            if reconstruction_error(values.get(g.name), mid) <= tolerance:
                hi = mid
            else:
                lo = mid + 1
        out[g.name] = lo
    return out


def magnitude_table(imodel: IntegralModel) -> Sensitivity:
    """A table per group: the error at width ``w`` is the largest LAMP score of the channels it
    drops (the weakest dropped first), so that one level across groups gives every width
    (:func:`~inn.budget.allocate.level_widths`). Groups without weights are left out (they
    keep their width)."""
    widths, errors = {}, {}
    for name, scores in channel_scores(imodel).items():
        lamp = lamp_scores(scores).numpy()
        widths[name] = np.arange(len(lamp) + 1, dtype=float)
        errors[name] = np.append(lamp[::-1], 0.0)  # width w drops lamp[: N - w]: max lamp[N-w-1]
    return Sensitivity(widths, errors, "magnitude")
