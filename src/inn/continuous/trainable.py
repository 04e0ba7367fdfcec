"""Trainable partitions: points that are parameters and stay strictly increasing in [0, 1]."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from inn.errors import PartitionError
from inn.numerics import check_partition, uniform

__all__ = ["TrainablePartition"]


class TrainablePartition(nn.Module):
    """``n`` trainable points, strictly increasing inside [0, 1] for any parameter value.

    The gaps between consecutive points (and, for an open partition, between the ends of the
    interval and the outer points) are a softmax of free parameters, mixed with a floor so no gap
    can vanish in floating point. Closed partitions keep their endpoints at 0 and 1.

    Args:
        n: number of points.
        init: initial points (strictly increasing, in [0, 1]; for ``closed`` the first must be 0
            and the last 1); default: :func:`uniform`.
        closed: whether the endpoints are fixed at 0 and 1.
        min_gap: fraction of the interval reserved as a floor spread evenly over the gaps.

    Shape:
        ``forward()`` returns ``(n,)``.
    """

    def __init__(
        self,
        n: int,
        init: Tensor | None = None,
        *,
        closed: bool = False,
        min_gap: float = 1e-2,
    ) -> None:
        super().__init__()
        if n < 1:
            raise PartitionError(f"a trainable partition needs at least one point, got n={n}")
        if not 0 <= min_gap < 1:
            raise PartitionError(f"min_gap must be in [0, 1), got {min_gap}")
        self.n, self.closed, self.min_gap = n, closed, min_gap
        if init is None:
            init = uniform(n, closed=closed, dtype=torch.float64)
        check_partition(init, name="initial trainable partition")
        if init.numel() != n:
            raise PartitionError(f"init has {init.numel()} points, expected n={n}")
        self.logits = nn.Parameter(self._logits_for(init.detach().to(torch.float64)).float())

    @property
    def num_gaps(self) -> int:
        return self.n - 1 if self.closed else self.n + 1

    def _logits_for(self, points: Tensor) -> Tensor:
        if self.closed:
            if self.n == 1:
                return torch.zeros(0, dtype=points.dtype)
            if points[0] != 0 or points[-1] != 1:
                raise PartitionError("a closed trainable partition must start at 0 and end at 1")
            gaps = points.diff()
        else:
            edges = torch.cat([points.new_zeros(1), points, points.new_ones(1)])
            gaps = edges.diff()
        floor = self.min_gap / self.num_gaps
        free = (gaps - floor) / (1.0 - self.min_gap)
        if (free <= 0).any():
            raise PartitionError(
                f"initial points have a gap below the floor min_gap / gaps = {floor:.3g}; "
                "lower min_gap"
            )
        return free.log() - free.log().mean()

    def forward(self) -> Tensor:
        if self.closed and self.n == 1:
            return self.logits.new_full((1,), 0.5)
        gaps = self.min_gap / self.num_gaps + (1.0 - self.min_gap) * torch.softmax(self.logits, 0)
        points = torch.cumsum(gaps, 0)
        if self.closed:
            return torch.cat([points.new_zeros(1), points[:-1], points.new_ones(1)])
        return points[:-1]

    def reset(self, points: Tensor) -> None:
        """Set the parameters so that ``forward()`` returns ``points`` (up to round-off)."""
        check_partition(points, name="points")
        if points.numel() != self.n:
            raise PartitionError(f"got {points.numel()} points for a partition of size {self.n}")
        with torch.no_grad():
            self.logits.copy_(self._logits_for(points.detach().cpu().to(torch.float64)))

    def extra_repr(self) -> str:
        return f"n={self.n}, closed={self.closed}, min_gap={self.min_gap}"
