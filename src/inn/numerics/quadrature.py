"""Quadrature rules on a partition of an interval, and integration over tensor axes.

Each rule maps strictly increasing points ``t`` (shape ``(n,)``) to weights ``w`` (shape
``(n,)``) such that ``sum_k w[k] f(t[k])`` approximates ``∫_a^b f``. Weights are differentiable
functions of the points wherever the rule allows moving them.

=================  ======================================================  ==========  =======
rule               weights                                                 exact for   order
=================  ======================================================  ==========  =======
``rectangle``      length of each point's cell; cells meet halfway between  degree 0    1 (2 on
                   points and span ``[a, b]`` (a tagged Riemann sum)                    midpoints)
``trapezoid``      composite trapezoid; needs ``t[0] = a`` and ``t[-1] = b``  degree 1    2
``simpson``        composite Simpson on pairs of (possibly unequal) cells;  degree 3    4
                   needs the endpoints and an odd number of points
``gauss-legendre`` Gauss-Legendre weights; ``t`` must be its nodes          2n - 1      —
``monte-carlo``    ``(b - a) / n`` each; ``t`` should be i.i.d. uniform         —       n^-1/2
=================  ======================================================  ==========  =======
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from inn.errors import QuadratureError, ShapeError
from inn.numerics.grids import check_partition, gauss_legendre

__all__ = ["RULES", "integrate", "quadrature_weights", "rule_needs_endpoints"]

Rule = Callable[[Tensor, float, float], Tensor]


def _rectangle(t: Tensor, a: float, b: float) -> Tensor:
    mids = 0.5 * (t[1:] + t[:-1])
    edges = torch.cat([t.new_full((1,), a), mids, t.new_full((1,), b)])
    return edges.diff()


def _check_endpoints(t: Tensor, a: float, b: float, rule: str) -> None:
    tol = 1e-6 * (b - a)
    if abs(t[0].item() - a) > tol or abs(t[-1].item() - b) > tol:
        raise QuadratureError(
            f"the {rule} rule needs points that start at a={a} and end at b={b}, got "
            f"[{t[0].item():.6g}, {t[-1].item():.6g}]; use a closed partition "
            "(inn.numerics.uniform(n, closed=True)) or rule='rectangle'"
        )


def _trapezoid(t: Tensor, a: float, b: float) -> Tensor:
    _check_endpoints(t, a, b, "trapezoid")
    if t.numel() < 2:
        raise QuadratureError("the trapezoid rule needs at least 2 points")
    h = t.diff()
    zero = t.new_zeros(1)
    return 0.5 * (torch.cat([h, zero]) + torch.cat([zero, h]))


def _simpson(t: Tensor, a: float, b: float) -> Tensor:
    _check_endpoints(t, a, b, "simpson")
    n = t.numel()
    if n < 3 or n % 2 == 0:
        raise QuadratureError(
            f"Simpson's rule needs an odd number of points >= 3, got {n}; "
            "use an odd partition size or rule='trapezoid'"
        )
    h = t.diff()
    h0, h1 = h[0::2], h[1::2]  # the two cells of each pair
    s = h0 + h1
    left = s / 6 * (2 - h1 / h0)
    mid = s**3 / (6 * h0 * h1)
    right = s / 6 * (2 - h0 / h1)
    w = t.new_zeros(n)
    w = w.index_add(0, torch.arange(0, n - 1, 2, device=t.device), left)
    w = w.index_add(0, torch.arange(1, n, 2, device=t.device), mid)
    return w.index_add(0, torch.arange(2, n, 2, device=t.device), right)


def _gauss_legendre(t: Tensor, a: float, b: float) -> Tensor:
    nodes, weights = gauss_legendre(t.numel(), a=a, b=b, dtype=torch.float64)
    if not torch.allclose(t.detach().double().cpu(), nodes, atol=1e-6 * (b - a), rtol=0):
        raise QuadratureError(
            "the gauss-legendre rule needs its own nodes; build them with "
            f"inn.numerics.gauss_legendre({t.numel()}, a={a}, b={b})"
        )
    return weights.to(dtype=t.dtype, device=t.device)


def _monte_carlo(t: Tensor, a: float, b: float) -> Tensor:
    return t.new_full((t.numel(),), (b - a) / t.numel())


RULES: dict[str, Rule] = {
    "rectangle": _rectangle,
    "trapezoid": _trapezoid,
    "simpson": _simpson,
    "gauss-legendre": _gauss_legendre,
    "monte-carlo": _monte_carlo,
}
_ALIASES = {"riemann": "rectangle", "midpoint": "rectangle", "gauss": "gauss-legendre"}


def _resolve(rule: str) -> str:
    if not isinstance(rule, str):
        raise QuadratureError(f"rule must be a string, got {type(rule).__name__}")
    name = _ALIASES.get(rule.lower(), rule.lower())
    if name not in RULES:
        raise QuadratureError(f"unknown quadrature rule {rule!r}; choose one of {sorted(RULES)}")
    return name


def rule_needs_endpoints(rule: str) -> bool:
    """Whether ``rule`` needs a closed partition (first point ``a``, last point ``b``)."""
    return _resolve(rule) in ("trapezoid", "simpson")


def quadrature_weights(
    points: Tensor, rule: str = "trapezoid", *, a: float = 0.0, b: float = 1.0
) -> Tensor:
    """Weights of ``rule`` at ``points`` for the integral over ``[a, b]``.

    Args:
        points: strictly increasing points in ``[a, b]``, shape ``(n,)``.
        rule: one of :data:`RULES` (aliases: ``riemann``/``midpoint``, ``gauss``).

    Returns:
        Tensor of shape ``(n,)``, same dtype and device as ``points``; differentiable with respect
        to ``points`` for the rectangle, trapezoid and Simpson rules.
    """
    name = _resolve(rule)
    if not b > a:
        raise QuadratureError(f"need a < b for the interval of integration, got [{a}, {b}]")
    unit = (points - a) / (b - a)
    check_partition(unit.detach(), name=f"points of the {name} rule (mapped to [0, 1])")
    return RULES[name](points, a, b)


def integrate(
    values: Tensor | Callable[..., Tensor],
    partitions: Tensor | Sequence[Tensor],
    dims: int | Sequence[int] | None = None,
    rule: str = "trapezoid",
    *,
    interval: tuple[float, float] = (0.0, 1.0),
) -> Tensor:
    """Integrate over one or several axes of a tensor sampled on partitions.

    Args:
        values: samples with ``values.shape[dims[i]] == len(partitions[i])``; or a function
            ``f(t_1, ..., t_k)`` of broadcastable tensors, evaluated on the grid of the partitions
            (then ``dims`` defaults to all k axes).
        partitions: one partition per integrated axis, each of shape ``(n_i,)``.
        dims: the axes of ``values`` to integrate (default: the last ``len(partitions)``).
        rule: quadrature rule applied along every integrated axis.
        interval: ``(a, b)``, the same for every axis.

    Returns:
        ``values`` with the integrated axes removed; differentiable in ``values`` (and in the
        points where the rule is).

    Example:
        >>> t = inn.numerics.uniform(101, closed=True)
        >>> inn.integrate(t**2, t, rule="simpson")  # ≈ 1/3
    """
    parts = [partitions] if isinstance(partitions, Tensor) else list(partitions)
    if callable(values) and not isinstance(values, Tensor):
        grid = torch.meshgrid(*parts, indexing="ij")
        values = values(*grid)
        if dims is None:
            dims = list(range(len(parts)))
    if not isinstance(values, Tensor):
        raise ShapeError(f"values must be a tensor or a callable, got {type(values).__name__}")
    if dims is None:
        dims = list(range(values.dim() - len(parts), values.dim()))
    dims = [dims] if isinstance(dims, int) else list(dims)
    if len(dims) != len(parts):
        raise ShapeError(f"got {len(parts)} partitions for {len(dims)} dims {dims}")
    ndim = values.dim()
    norm = []
    for d in dims:
        if not -ndim <= d < ndim:
            raise ShapeError(f"dim {d} is out of range for values of shape {tuple(values.shape)}")
        norm.append(d % ndim)
    if len(set(norm)) != len(norm):
        raise ShapeError(f"dims must be distinct, got {dims}")
    a, b = interval
    result = values
    for d, p in sorted(zip(norm, parts, strict=True), reverse=True):
        if result.shape[d] != p.numel():
            raise ShapeError(
                f"axis {d} of values has size {result.shape[d]} but its partition has "
                f"{p.numel()} points"
            )
        w = quadrature_weights(p, rule, a=a, b=b).to(result.dtype)
        result = torch.tensordot(result, w, dims=([d], [0]))
    return result
