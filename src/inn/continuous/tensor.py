"""A tensor that is a continuous function along some of its axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from inn.continuous.partition import memoised
from inn.continuous.resample import plan_uniform, resample_uniform, sampling_dtype
from inn.errors import ShapeError
from inn.numerics import apply_taps, interpolate, interpolation_matrix, uniform
from inn.numerics.interpolation import interpolation_taps

__all__ = ["ContinuousTensor", "axis_matrix"]


def axis_matrix(segments: Sequence[int], points: Sequence[Tensor], *, closed: bool) -> Tensor:
    """Block-diagonal interpolation matrix ``(sum(len(p)), sum(segments))`` for one axis.

    Args:
        segments: node counts of consecutive segments of the axis (one, unless channels of
            several tensors were concatenated); each segment is interpolated on its own.
        points: the sampling points of each segment.
    """
    if len(segments) != len(points):
        raise ShapeError(f"axis has {len(segments)} segments but got {len(points)} partitions")
    return torch.block_diag(
        *(interpolation_matrix(n, p, closed=closed) for n, p in zip(segments, points, strict=True))
    )


class ContinuousTensor(nn.Module):
    """Node values on a lattice along the continuous axes; ordinary entries along the others.

    Args:
        values: initial node values, e.g. a discrete weight (then sampling at the node positions
            gives it back exactly).
        segments: ``{dim: [N_1, N_2, ...]}``, the node counts of the segments of each continuous
            axis (summing to ``values.shape[dim]``).
        closed: lattice layout of the nodes (see :func:`inn.numerics.uniform`).
        trainable: store the values as a parameter (else as a buffer, e.g. running statistics).

    Example:
        >>> w = ContinuousTensor(torch.randn(8, 4), {0: [8]})
        >>> w.sample({0: [inn.numerics.uniform(5)]}).shape
        torch.Size([5, 4])
    """

    def __init__(
        self,
        values: Tensor,
        segments: Mapping[int, Sequence[int]],
        *,
        closed: bool = False,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        values = values.detach().clone()
        norm: dict[int, tuple[int, ...]] = {}
        for dim, segs in segments.items():
            if not -values.dim() <= dim < values.dim():
                raise ShapeError(
                    f"dim {dim} is out of range for a tensor of shape {tuple(values.shape)}"
                )
            if sum(segs) != values.shape[dim] or any(n < 1 for n in segs):
                raise ShapeError(
                    f"segments {list(segs)} do not add up to axis {dim} of size {values.shape[dim]}"
                )
            norm[dim % values.dim()] = tuple(int(n) for n in segs)
        self.segments = norm
        self.closed = closed
        if trainable:
            self.values = nn.Parameter(values)
        else:
            self.register_buffer("values", values)

    def sample(self, points: Mapping[int, Sequence[Tensor | int]]) -> Tensor:
        """Evaluate at ``points[dim]`` (one entry per segment) along each continuous axis.

        An entry is a tensor of points, or an int ``m`` for the uniform partition of ``m`` points
        (``m`` equal to the segment's node count returns the nodes themselves). Axes missing
        from ``points`` are returned at their nodes. Differentiable with respect to the values
        and the points.
        """
        out = self.values
        uniform_sizes: dict[int, tuple[int, ...]] = {}
        for dim, segs in self.segments.items():
            if dim not in points:
                continue
            entries = list(points[dim])
            if len(entries) != len(segs):
                raise ShapeError(
                    f"axis {dim} has {len(segs)} segments but got {len(entries)} partitions"
                )
            if all(isinstance(e, int) for e in entries):
                if tuple(entries) != segs:  # else: the uniform lattice at full width is the nodes
                    uniform_sizes[dim] = tuple(entries)
                continue
            chunks = out.split(list(segs), dim)
            out = torch.cat(
                [self._interpolate(c, e, dim) for c, e in zip(chunks, entries, strict=True)], dim
            )
        if uniform_sizes:
            out = self._resample_uniform(out, uniform_sizes)
        return out

    def _resample_uniform(self, values: Tensor, sizes: Mapping[int, tuple[int, ...]]) -> Tensor:
        plan = plan_uniform(
            values.shape,
            self.segments,
            sizes,
            closed=self.closed,
            dtype=sampling_dtype(values.dtype),
            device=values.device,
        )
        return resample_uniform([plan], [values])[0]

    def _interpolate(self, chunk: Tensor, entry: Tensor | int, dim: int) -> Tensor:
        """``chunk``'s nodes along ``dim`` evaluated at ``entry`` (taps memoised per pass)."""
        points = self._as_points(entry, chunk)
        n = chunk.shape[dim]
        if n < 2 or not isinstance(entry, Tensor):
            return interpolate(chunk, points, dim, closed=self.closed)
        # The memo keeps ``entry`` alive, so no other tensor can take its id during the pass.
        key = ("taps", id(entry), n, self.closed, chunk.dtype)
        _, nodes, taps = memoised(key, lambda: (entry, *self._taps(points, n)))
        if nodes is not None:  # selected channels: their node values, one gather
            return chunk.index_select(dim, nodes)
        return apply_taps(chunk, *taps, dim)

    def _taps(self, points: Tensor, n: int) -> tuple[Tensor | None, tuple[Tensor, Tensor] | None]:
        """``(node indices, None)`` where every point is a lattice node (:func:`_node_indices`),
        else ``(None, (index, weights))`` of :func:`interpolation_taps`."""
        nodes = _node_indices(points, n, self.closed)
        if nodes is not None:
            return nodes, None
        return None, interpolation_taps(n, points, closed=self.closed)

    def _as_points(self, entry: Tensor | int, like: Tensor) -> Tensor:
        if isinstance(entry, Tensor):
            return entry.to(like.dtype)  # keeps the gradient of trainable points
        return uniform(entry, closed=self.closed, dtype=like.dtype, device=like.device)

    def _points(self, entry: Tensor | int) -> Tensor:
        if isinstance(entry, Tensor):
            return entry.detach().to(torch.float64)
        return uniform(entry, closed=self.closed, dtype=torch.float64)

    def assign(self, discrete: Tensor, points: Mapping[int, Sequence[Tensor]]) -> None:
        """Set the node values so that ``sample(points)`` equals ``discrete``.

        Each continuous axis in ``points`` must have as many points as nodes; the interpolation
        matrix of that axis is inverted (identity when the points are the nodes).
        """
        if discrete.dim() != self.values.dim():
            raise ShapeError(
                f"expected a tensor with {self.values.dim()} axes, got shape {tuple(discrete.shape)}"
            )
        out = discrete.detach().to(self.values.dtype)
        for dim, segs in self.segments.items():
            if dim not in points:
                continue
            pts = [self._points(e) for e in points[dim]]
            matrix = axis_matrix(segs, pts, closed=self.closed)
            if matrix.shape[0] != matrix.shape[1]:
                raise ShapeError(
                    f"cannot invert axis {dim}: {matrix.shape[0]} points for {matrix.shape[1]} nodes"
                )
            moved = out.movedim(dim, 0).to(torch.float64)
            flat = torch.linalg.solve(matrix, moved.reshape(moved.shape[0], -1))
            out = flat.reshape(moved.shape).movedim(0, dim).to(self.values.dtype)
        if out.shape != self.values.shape:
            raise ShapeError(
                f"expected a tensor of shape {tuple(self.values.shape)}, got {tuple(discrete.shape)}"
            )
        with torch.no_grad():
            self.values.copy_(out)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.values.shape)}, segments={self.segments}, closed={self.closed}"


def _node_indices(points: Tensor, num_nodes: int, closed: bool) -> Tensor | None:
    """The lattice nodes ``points`` are, where every point is one and none carries a gradient
    (selected channels: the interpolant there is the node value itself, and a gather costs a
    fraction of four weighted taps); else ``None``."""
    if points.requires_grad:
        return None
    nodes = uniform(num_nodes, closed=closed, dtype=points.dtype, device=points.device)
    exact = points[:, None] == nodes[None, :]
    if not bool(exact.any(dim=1).all()):
        return None
    return exact.long().argmax(dim=1)
