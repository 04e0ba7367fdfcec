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

import torch
from torch import Tensor

from inn.errors import InterpolationError
from inn.numerics.partitions import uniform

__all__ = ["KEYS_A", "cubic_kernel", "interpolate", "interpolation_matrix"]

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
    if not isinstance(points, Tensor) or points.dim() != 1:
        raise InterpolationError(
            f"points must be a 1-D tensor, got {getattr(points, 'shape', type(points).__name__)}"
        )
    if not points.is_floating_point():
        raise InterpolationError(f"points must be floating point, got {points.dtype}")
    if num_nodes < 1:
        raise InterpolationError(f"need at least one node, got num_nodes={num_nodes}")
    dtype, device, m = points.dtype, points.device, points.numel()
    if num_nodes == 1:
        return torch.ones(m, 1, dtype=dtype, device=device)
    nodes = uniform(num_nodes, closed=closed, dtype=dtype, device=device)
    pos = (points - nodes[0]) / (nodes[1] - nodes[0])
    # Points equal to a node must give exactly that node's value (exact conversion), so their
    # cell and offset come from the node index, not from the rounded division above.
    exact = points.detach()[:, None] == nodes[None, :]
    hit = exact.any(dim=1)
    node = exact.long().argmax(dim=1).to(dtype)
    cell = torch.where(hit, node.clamp(max=num_nodes - 2), pos.detach().floor())
    cell = cell.clamp(0, num_nodes - 2)
    offset = torch.where(hit, node - cell, pos.detach() - cell)
    s = offset + (pos - pos.detach())  # the value of `offset`, the gradient of `pos`
    taps = _tap_weights(s, a)  # (m, 4)
    index = cell.long()[:, None] + torch.arange(4, device=device)  # into the ghost lattice
    dense = torch.zeros(m, num_nodes + 2, dtype=dtype, device=device)
    dense = dense.scatter_add(1, index, taps)
    return dense @ _ghost_rows(num_nodes, dtype, device)


def interpolate(
    values: Tensor, points: Tensor, dim: int = -1, *, closed: bool = False, a: float = KEYS_A
) -> Tensor:
    """Evaluate the interpolant of ``values`` along ``dim`` at ``points``.

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
    matrix = interpolation_matrix(values.shape[dim], points.to(values.dtype), closed=closed, a=a)
    moved = values.movedim(dim, -1)
    return (moved @ matrix.T).movedim(-1, dim)
