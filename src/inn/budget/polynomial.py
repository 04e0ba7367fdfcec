"""Costs as quadratic functions of the group widths: :class:`CostModel` and its builder.

Every count the budget needs is a sum of terms ``c * A(w) * B(w)``: ``c`` a constant (kernel
size, spatial positions), ``A`` and ``B`` the sizes of a tensor's two channel axes, each the
sum of the widths of the groups whose partitions make up the axis (several for concatenated
channels). :class:`CostModel` holds those terms as two sparse-in-spirit matrices, so a cost and
the change of cost for shrinking any one group are a few vector operations: planning does not
sample or run the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CostModel", "CostTerms"]


@dataclass(frozen=True)
class CostModel:
    """``cost(w) = constant + sum_t coefficient[t] * (A[t] @ w + a0[t]) * (B[t] @ w + b0[t])``.

    Attributes:
        groups: group names, the order of ``w``.
        coefficient: ``(T,)``; ``A``, ``B``: ``(T, G)`` counts of each group in a term's axis;
        a0, b0: ``(T,)`` the constant part of each axis (1 where the axis is not a channel axis).
    """

    groups: tuple[str, ...]
    constant: float
    coefficient: np.ndarray
    A: np.ndarray
    a0: np.ndarray
    B: np.ndarray
    b0: np.ndarray

    def __call__(self, widths: np.ndarray) -> float:
        """The cost at ``widths`` ``(G,)`` (every group, in ``groups`` order)."""
        return float(
            self.constant
            + self.coefficient @ ((self.A @ widths + self.a0) * (self.B @ widths + self.b0))
        )

    def savings(self, widths: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Per group ``g``: cost at ``widths`` minus cost with group ``g`` alone ``steps[g]``
        narrower, shape ``(G,)``."""
        a = self.A @ widths + self.a0
        b = self.B @ widths + self.b0
        ca, cb = self.coefficient * a, self.coefficient * b
        linear = cb @ self.A + ca @ self.B
        square = self.coefficient @ (self.A * self.B)
        return steps * linear - steps**2 * square

    def scaled(self, factor: float, constant: float = 0.0) -> CostModel:
        return CostModel(
            self.groups, self.constant * factor + constant, self.coefficient * factor,
            self.A, self.a0, self.B, self.b0,
        )  # fmt: skip

    def plus(self, other: CostModel) -> CostModel:
        """The sum of two cost models over the same groups."""
        return CostModel(
            self.groups,
            self.constant + other.constant,
            np.concatenate([self.coefficient, other.coefficient]),
            np.concatenate([self.A, other.A]),
            np.concatenate([self.a0, other.a0]),
            np.concatenate([self.B, other.B]),
            np.concatenate([self.b0, other.b0]),
        )


class CostTerms:
    """Collects terms ``c * axis_a * axis_b`` into a :class:`CostModel`; an axis is a list of
    partitions (or ``None``), ``index`` maps ``id(partition)`` to its group's position."""

    def __init__(self, index: Mapping[int, int], num_groups: int) -> None:
        self.index, self.num_groups = index, num_groups
        self.constant = 0.0
        self.rows: list[tuple[float, np.ndarray, float, np.ndarray, float]] = []

    def _axis(self, partitions: Sequence | None) -> tuple[np.ndarray, float]:
        row = np.zeros(self.num_groups)
        if not partitions:
            return row, 1.0
        for p in partitions:
            row[self.index[id(p)]] += 1
        return row, 0.0

    def add(self, coefficient: float, a: Sequence | None, b: Sequence | None) -> None:
        if not a and not b:
            self.constant += coefficient
            return
        ra, a0 = self._axis(a)
        rb, b0 = self._axis(b)
        self.rows.append((coefficient, ra, a0, rb, b0))

    def model(self, groups: tuple[str, ...]) -> CostModel:
        g = self.num_groups
        if not self.rows:
            empty = np.zeros((0, g))
            return CostModel(
                groups, self.constant, np.zeros(0), empty, np.zeros(0), empty, np.zeros(0)
            )
        c, ra, a0, rb, b0 = zip(*self.rows, strict=True)
        return CostModel(
            groups,
            self.constant,
            np.array(c),
            np.stack(ra),
            np.array(a0),
            np.stack(rb),
            np.array(b0),
        )
