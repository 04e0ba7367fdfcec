"""Cubic convolution interpolation (Keys, 1981) as a matrix per continuous axis.

Node values ``v`` (shape ``(N,)``) sit on a uniform lattice of ``N`` nodes in [0, 1] (the same
layouts as :func:`inn.numerics.uniform`). The value at a point ``t`` is
``sum_k v[k] u((t - x_k) / h)`` with the Keys kernel ``u`` (``a = -0.5``), which is third-order
accurate and reproduces polynomials of degree <= 2. At the ends the lattice is extended by one
ghost node each side with Keys' boundary condition ``v[-1] = 3 v[0] - 3 v[1] + v[2]`` (quadratic
extrapolation, so quadratics stay exact up to the boundary); points beyond the outer nodes use
the cubic of the outermost cell. The whole map is linear in ``v``:
``sampled = interpolation_matrix(N, t) @ v`` with a matrix of shape ``(len(t), N)`` that is
differentiable with respect to ``t``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from inn.errors import InterpolationError
from inn.numerics.grids import uniform

__all__ = [
    "KEYS_A",
    "apply_taps",
    "cubic_kernel",
    "interpolate",
    "interpolation_matrix",
    "resample",
    "resampling_matrix",
]

KEYS_A = -0.5


def cubic_kernel(s: Tensor, a: float = KEYS_A) -> Tensor:
    """The cubic convolution kernel ``u(s)``: 1 at 0, 0 at other integers, support ``(-2, 2)``."""
    x = s.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _tap_weights(s: Tensor, a: float) -> Tensor:
    """Weights of the nodes ``i-1, i, i+1, i+2`` for local coordinate ``s`` in cell ``i``.

    These are ``u(1+s), u(s), u(1-s), u(2-s)`` written as polynomials, so they extend smoothly
    (as extrapolation) to ``s`` outside [0, 1]. Shape ``(m, 4)``.
    """
    s2, s3 = s * s, s * s * s
    return torch.stack(
        [
            a * (s3 - 2 * s2 + s),
            (a + 2) * s3 - (a + 3) * s2 + 1,
            -(a + 2) * s3 + (2 * a + 3) * s2 - a * s,
            a * (s2 - s3),
        ],
        dim=-1,
    )


def _ghost_rows(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Matrix ``(n + 2, n)`` mapping node values to values on the lattice with ghost nodes."""
    ext = torch.zeros(n + 2, n, dtype=dtype, device=device)
    ext[1:-1] = torch.eye(n, dtype=dtype, device=device)
    if n >= 3:
        first, last = [3.0, -3.0, 1.0], [1.0, -3.0, 3.0]
    elif n == 2:
        first, last = [2.0, -1.0], [-1.0, 2.0]
    else:
        first, last = [1.0], [1.0]
    k = len(first)
    ext[0, :k] = torch.tensor(first, dtype=dtype, device=device)
    ext[-1, n - k :] = torch.tensor(last, dtype=dtype, device=device)
    return ext


def interpolation_taps(
    num_nodes: int, points: Tensor, *, closed: bool = False, a: float = KEYS_A
) -> tuple[Tensor, Tensor]:
    """The four lattice nodes each point depends on, and their weights.

    Returns:
        ``(index, weights)``, both ``(m, 4)``: ``index`` counts nodes on the lattice extended by
        one ghost node each side (so node ``k`` is ``index = k + 1``); ``weights`` is in the dtype
        of ``points`` and differentiable with respect to them.
    """
    if not isinstance(points, Tensor) or points.dim() != 1:
        raise InterpolationError(
            f"points must be a 1-D tensor, got {getattr(points, 'shape', type(points).__name__)}"
        )
    if not points.is_floating_point():
        raise InterpolationError(f"points must be floating point, got {points.dtype}")
    if num_nodes < 2:
        raise InterpolationError(f"taps need at least two nodes, got num_nodes={num_nodes}")
    nodes = uniform(num_nodes, closed=closed, dtype=points.dtype, device=points.device)
    pos = (points - nodes[0]) / (nodes[1] - nodes[0])
    # Points equal to a node must give exactly that node's value (exact conversion), so their
    # cell and offset come from the node index, not from the rounded division above.
    exact = points.detach()[:, None] == nodes[None, :]
    hit = exact.any(dim=1)
    node = exact.long().argmax(dim=1).to(points.dtype)
    cell = torch.where(hit, node.clamp(max=num_nodes - 2), pos.detach().floor())
    cell = cell.clamp(0, num_nodes - 2)
    offset = torch.where(hit, node - cell, pos.detach() - cell)
    s = offset + (pos - pos.detach())  # the value of `offset`, the gradient of `pos`
    index = cell.long()[:, None] + torch.arange(4, device=points.device)
    return index, _tap_weights(s, a)


def with_ghost_nodes(values: Tensor) -> Tensor:
    """``values`` (nodes along axis 0, ``N >= 2``) extended by Keys' ghost node at each end."""
    n = values.shape[0]
    if n >= 3:
        first = 3 * values[0] - 3 * values[1] + values[2]
        last = 3 * values[-1] - 3 * values[-2] + values[-3]
    else:
        first, last = 2 * values[0] - values[1], 2 * values[1] - values[0]
    return torch.cat([first[None], values, last[None]])


def interpolation_matrix(
    num_nodes: int, points: Tensor, *, closed: bool = False, a: float = KEYS_A
) -> Tensor:
    """Matrix ``M`` of shape ``(len(points), num_nodes)`` with ``M @ v`` = interpolant at points.

    Args:
        num_nodes: number of lattice nodes ``N`` (laid out as ``uniform(N, closed=closed)``).
        points: where to evaluate, shape ``(m,)``; any real values (outside the lattice the
            outermost cubic is extrapolated).
        closed: lattice layout, see :func:`inn.numerics.uniform`.
        a: kernel parameter (Keys: -0.5).

    Returns:
        Tensor ``(m, N)`` in the dtype and on the device of ``points``; at a node ``t = x_k`` its
        row is exactly the unit vector ``e_k``.
    """
    if num_nodes < 1:
        raise InterpolationError(f"need at least one node, got num_nodes={num_nodes}")
    if num_nodes == 1:
        interpolation_taps(2, points, closed=closed, a=a)  # validates points
        return torch.ones(points.numel(), 1, dtype=points.dtype, device=points.device)
    index, taps = interpolation_taps(num_nodes, points, closed=closed, a=a)
    dense = torch.zeros(points.numel(), num_nodes + 2, dtype=points.dtype, device=points.device)
    dense = dense.scatter_add(1, index, taps)
    return dense @ _ghost_rows(num_nodes, points.dtype, points.device)


Axis = tuple[tuple[int, ...], tuple[int, ...]]  # (node counts of segments, points per segment)


def resampling_matrix(
    axes: Sequence[Axis],
    *,
    closed: bool = False,
    row_scale: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Sparse (CSR) matrix resampling one or more axes at uniform partitions, and its transpose.

    Each axis is ``(segments, sizes)``: segment ``j`` has ``segments[j]`` lattice nodes and is
    sampled at ``uniform(sizes[j])`` (a block-diagonal matrix ``(sum(sizes), sum(segments))``
    with at most six entries per row: four taps, ghost nodes folded in). Several axes give the
    Kronecker product of their matrices, which acts on the axes flattened together (row-major),
    so a conv weight is resampled along both channel axes by one product. A sparse product
    costs ``O(4 m)`` per column like a gather of taps, but it is one operation, not a dozen.

    Args:
        row_scale: multiplies row ``i`` of the matrix (e.g. quadrature weights), shape ``(rows,)``.
    """
    key = tuple((tuple(segs), tuple(sizes)) for segs, sizes in axes)
    for segs, sizes in key:
        if len(segs) != len(sizes):
            raise InterpolationError(f"{len(segs)} segments but {len(sizes)} sizes")
    device = torch.device(device or "cpu")
    if row_scale is None and len(key) == 1:
        return _axis_matrix(key[0], closed, dtype, device)
    indices, values, shape = _product_entries(key, closed)
    if row_scale is not None:
        values = values * row_scale.detach().to(values)[indices[0]]
    return _csr_pair(indices, values, shape, dtype, device)


@functools.lru_cache(maxsize=1024)
def _axis_matrix(
    axis: Axis, closed: bool, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """One axis, memoised (O(6 m) entries): uniform partitions are resampled at every step."""
    with torch.inference_mode(False):  # memoised tensors must also serve autograd later
        return _csr_pair(*_product_entries((axis,), closed), dtype, device)


def _csr_pair(
    indices: Tensor,
    values: Tensor,
    shape: tuple[int, int],
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    matrix = torch.sparse_coo_tensor(
        indices, values, shape, is_coalesced=True, check_invariants=False
    ).to(dtype=dtype, device=device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we only multiply
        warnings.simplefilter("ignore", UserWarning)
        return _int32_indices(matrix.to_sparse_csr()), _int32_indices(
            matrix.t().coalesce().to_sparse_csr()
        )


def _int32_indices(matrix: Tensor) -> Tensor:
    """The CSR ``matrix`` with int32 indices: products skip converting int64 ones at every call
    (measured: a quarter of the time of a small product)."""
    return torch.sparse_csr_tensor(
        matrix.crow_indices().to(torch.int32),
        matrix.col_indices().to(torch.int32),
        matrix.values(),
        matrix.shape,
        check_invariants=False,
    )


@functools.lru_cache(maxsize=4096)
def _product_entries(
    axes: tuple[Axis, ...], closed: bool
) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """Coalesced COO indices, float64 values and shape of the Kronecker product of the axes
    (memoised: random-width training revisits the same sizes)."""
    with torch.inference_mode(False):  # memoised tensors must also serve autograd later
        return _product(axes, closed)


def _product(axes: tuple[Axis, ...], closed: bool) -> tuple[Tensor, Tensor, tuple[int, int]]:
    shape = (1, 1)
    rows = cols = torch.zeros(1, dtype=torch.long)
    vals = torch.ones(1, dtype=torch.float64)
    for segments, sizes in axes:
        r, c, v = _axis_entries(segments, sizes, closed)
        m, n = sum(sizes), sum(segments)
        rows = (rows[:, None] * m + r[None]).flatten()
        cols = (cols[:, None] * n + c[None]).flatten()
        vals = (vals[:, None] * v[None]).flatten()
        shape = (shape[0] * m, shape[1] * n)
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, shape, check_invariants=True)
    coo = coo.coalesce()
    return coo.indices(), coo.values(), shape


@functools.lru_cache(maxsize=1024)
def _axis_entries(
    segments: tuple[int, ...], sizes: tuple[int, ...], closed: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """COO entries (float64) of the block-diagonal matrix of one axis (memoised)."""
    rows, cols, vals = [], [], []
    row0 = col0 = 0
    with torch.inference_mode(False):  # memoised tensors must also serve autograd later
        for n, m in zip(segments, sizes, strict=True):
            r, c, v = _segment_entries(n, m, closed)
            rows.append(r + row0)
            cols.append(c + col0)
            vals.append(v)
            row0, col0 = row0 + m, col0 + n
        return torch.cat(rows), torch.cat(cols), torch.cat(vals)


def _segment_entries(n: int, m: int, closed: bool) -> tuple[Tensor, Tensor, Tensor]:
    """COO entries (float64) of the interpolation matrix of ``n`` nodes at ``uniform(m)``."""
    if n == m:  # the points are the nodes
        return torch.arange(n), torch.arange(n), torch.ones(n, dtype=torch.float64)
    if n == 1:  # a constant function
        return torch.arange(m), torch.zeros(m, dtype=torch.long), torch.ones(m, dtype=torch.float64)
    index, taps = interpolation_taps(
        n, uniform(m, closed=closed, dtype=torch.float64), closed=closed
    )
    rows = torch.arange(m).repeat_interleave(4)
    cols, vals = index.flatten() - 1, taps.flatten()  # node k has ghost-lattice index k + 1
    first, last = cols == -1, cols == n
    inner = ~(first | last)
    parts = [(rows[inner], cols[inner], vals[inner])]
    # a ghost node is a combination of the nodes next to it (see with_ghost_nodes)
    coefficients = [3.0, -3.0, 1.0] if n >= 3 else [2.0, -1.0]
    for j, c in enumerate(coefficients):
        parts.append((rows[first], torch.full_like(cols[first], j), c * vals[first]))
        parts.append((rows[last], torch.full_like(cols[last], n - 1 - j), c * vals[last]))
    return tuple(torch.cat(x) for x in zip(*parts, strict=True))  # type: ignore[return-value]


def resample(values: Tensor, matrix: Tensor, dims: Sequence[int], sizes: Sequence[int]) -> Tensor:
    """``matrix`` (dense or sparse) applied to the axes ``dims`` of ``values`` flattened together
    (row-major, in the order given), which then have ``sizes``."""
    dims, front = tuple(dims), tuple(range(len(dims)))
    moved = values if dims == front else values.movedim(dims, front)
    flat = moved.reshape(matrix.shape[1], -1)
    # sparse products have no half-precision kernels: keep autocast (AMP) out of them; entering
    # the context costs about 12 us, 40 % of a small layer's product (profiled), so only under AMP
    if torch.is_autocast_enabled(values.device.type):
        with torch.autocast(values.device.type, enabled=False):
            flat = matrix @ flat
    else:
        flat = matrix @ flat
    out = flat.reshape(*sizes, *moved.shape[len(dims) :])
    return out if dims == front else out.movedim(front, dims)


def apply_taps(values: Tensor, index: Tensor, taps: Tensor, dim: int) -> Tensor:
    """Combine the nodes of ``values`` along ``dim`` (``N >= 2``) with precomputed taps."""
    moved = values.movedim(dim, 0)
    ghosts = with_ghost_nodes(moved)
    taps = taps.to(values.dtype).reshape(*taps.shape, *([1] * (moved.dim() - 1)))
    out = sum(taps[:, k] * ghosts[index[:, k]] for k in range(4))
    return out.movedim(0, dim)


def interpolate(
    values: Tensor, points: Tensor, dim: int = -1, *, closed: bool = False, a: float = KEYS_A
) -> Tensor:
    """Evaluate the interpolant of ``values`` along ``dim`` at ``points``.

    Costs ``O(4 m)`` per entry of the other axes (each point reads four nodes), not ``O(m N)``.

    Args:
        values: node values; ``values.shape[dim]`` is the number of nodes ``N``.
        points: shape ``(m,)``.

    Returns:
        ``values`` with axis ``dim`` of size ``m`` instead of ``N``.
    """
    if not -values.dim() <= dim < values.dim():
        raise InterpolationError(
            f"dim {dim} is out of range for values of shape {tuple(values.shape)}"
        )
    points = points.to(values.dtype)
    if values.shape[dim] == 1:
        interpolation_taps(2, points, closed=closed, a=a)  # validates points
        shape = list(values.shape)
        shape[dim] = points.numel()
        return values.expand(shape)
    index, taps = interpolation_taps(values.shape[dim], points, closed=closed, a=a)
    return apply_taps(values, index, taps, dim)
