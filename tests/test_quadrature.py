"""Quadrature rules against scipy and against their degree of exactness / order of convergence."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate as sp_integrate

import inn
from inn.numerics import gauss_legendre, quadrature_weights, uniform

SMOOTH = [
    (lambda t: torch.exp(-3 * t) * torch.cos(5 * t), lambda t: np.exp(-3 * t) * np.cos(5 * t)),
    (lambda t: 1 / (1 + 25 * (t - 0.4) ** 2), lambda t: 1 / (1 + 25 * (t - 0.4) ** 2)),
    (lambda t: torch.sqrt(t + 0.1), lambda t: np.sqrt(t + 0.1)),
]


def _points(rule: str, n: int) -> torch.Tensor:
    if rule == "gauss-legendre":
        return gauss_legendre(n, dtype=torch.float64)[0]
    closed = rule in ("trapezoid", "simpson")
    return uniform(n, closed=closed, dtype=torch.float64)


@pytest.mark.parametrize(
    "rule,n,tol",
    [
        ("rectangle", 400, 1e-5),
        ("trapezoid", 401, 1e-5),
        ("simpson", 101, 1e-7),
        ("gauss-legendre", 30, 1e-9),
    ],
)
@pytest.mark.parametrize("k", range(len(SMOOTH)))
def test_matches_scipy_quad(rule, n, tol, k):
    f_torch, f_np = SMOOTH[k]
    reference, _ = sp_integrate.quad(f_np, 0.0, 1.0, epsabs=1e-13)
    t = _points(rule, n)
    got = inn.integrate(f_torch(t), t, rule=rule).item()
    assert abs(got - reference) < tol


def _is_exact(rule: str, degree: int, n: int, a: float = 0.0, b: float = 1.0) -> bool:
    if rule == "gauss-legendre":
        t = gauss_legendre(n, a=a, b=b, dtype=torch.float64)[0]
    else:
        t = a + (b - a) * _points(rule, n)
    exact = (b ** (degree + 1) - a ** (degree + 1)) / (degree + 1)
    got = inn.integrate(t**degree, t, rule=rule, interval=(a, b)).item()
    return abs(got - exact) < 1e-10 * max(1.0, abs(exact))


@pytest.mark.parametrize(
    "rule,n,degree",
    [
        ("rectangle", 7, 1),
        ("trapezoid", 7, 1),
        ("simpson", 7, 3),
        ("gauss-legendre", 3, 5),
        ("gauss-legendre", 6, 11),
    ],
)
def test_degree_of_exactness(rule, n, degree):
    # exact up to `degree` (on [-1, 2] too: the interval is honoured), not at degree + 1
    for d in range(degree + 1):
        assert _is_exact(rule, d, n)
        assert _is_exact(rule, d, n, a=-1.0, b=2.0)
    assert not _is_exact(rule, degree + 1, n, a=-1.0, b=2.0)


def test_rectangle_is_not_trapezoid_on_a_nonuniform_closed_grid():
    t = torch.tensor([0.0, 0.1, 0.5, 0.6, 1.0], dtype=torch.float64)
    rect = quadrature_weights(t, "rectangle")
    trap = quadrature_weights(t, "trapezoid")
    # on a closed grid the midpoint cells coincide with the trapezoid weights ...
    assert torch.allclose(rect, trap)
    # ... but on an open grid the rectangle rule gives each point its cell, and the weights of
    # an equal-cell grid are all 1/n, where a trapezoid rule would refuse the points
    t_open = uniform(5, dtype=torch.float64)
    assert torch.allclose(
        quadrature_weights(t_open, "rectangle"), torch.full((5,), 0.2, dtype=torch.float64)
    )
    with pytest.raises(inn.QuadratureError, match="start at a"):
        quadrature_weights(t_open, "trapezoid")
    # a left Riemann sum would give 0.4; the rectangle (cell) rule integrates t over [0,1] as 0.5
    assert abs(inn.integrate(t_open, t_open, rule="rectangle").item() - 0.5) < 1e-12


def _convergence_order(rule: str, sizes: list[int]) -> float:
    reference = math.exp(1) - 1
    errors = []
    for n in sizes:
        t = _points(rule, n)
        errors.append(abs(inn.integrate(torch.exp(t), t, rule=rule).item() - reference))
    hs = [1.0 / (n - 1) for n in sizes]
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    return float(slope)


def test_convergence_orders():
    assert abs(_convergence_order("trapezoid", [9, 17, 33, 65, 129]) - 2) < 0.1
    assert abs(_convergence_order("simpson", [9, 17, 33, 65, 129]) - 4) < 0.15
    # on cell midpoints the rectangle rule is the composite midpoint rule: order 2
    assert abs(_convergence_order("rectangle", [9, 17, 33, 65, 129]) - 2) < 0.1


def test_simpson_on_nonuniform_grid_is_exact_for_quadratics():
    # on pairs of unequal cells Simpson integrates the interpolating parabola: exact for degree 2
    t = torch.tensor([0.0, 0.05, 0.3, 0.35, 0.7, 0.95, 1.0], dtype=torch.float64)
    got = inn.integrate(3 * t**2 - t + 2, t, rule="simpson").item()
    assert abs(got - (1 - 0.5 + 2)) < 1e-12
    reference, _ = sp_integrate.quad(np.exp, 0.0, 1.0)
    assert abs(inn.integrate(torch.exp(t), t, rule="simpson").item() - reference) < 1e-3


def test_simpson_weights_of_a_constant_sum_to_one_and_odd_count_enforced():
    t = uniform(9, closed=True, dtype=torch.float64)
    assert abs(quadrature_weights(t, "simpson").sum().item() - 1) < 1e-14
    with pytest.raises(inn.QuadratureError, match="odd number"):
        quadrature_weights(uniform(8, closed=True), "simpson")


def test_monte_carlo_converges():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(200_000, generator=g, dtype=torch.float64).sort().values
    got = inn.integrate(torch.sin(t), t, rule="monte-carlo").item()
    assert abs(got - (1 - math.cos(1))) < 5e-3


def test_integrate_several_axes_and_callable():
    x = uniform(21, closed=True, dtype=torch.float64)
    y = uniform(31, closed=True, dtype=torch.float64)
    values = (x[:, None] ** 2) * (y[None, :] ** 3)  # ∫∫ = 1/3 * 1/4
    batch = torch.stack([values, 2 * values])  # shape (2, 21, 31)
    out = inn.integrate(batch, [x, y], dims=[1, 2], rule="simpson")
    assert out.shape == (2,)
    assert torch.allclose(out, torch.tensor([1 / 12, 1 / 6], dtype=torch.float64), atol=1e-12)
    via_callable = inn.integrate(lambda a, b: a**2 * b**3, [x, y], rule="simpson")
    assert abs(via_callable.item() - 1 / 12) < 1e-12


def test_gradients_against_analytic_values():
    # d/dc ∫ c t^2 dt = 1/3; d/dt_k of the trapezoid sum for f = 1 is 0
    c = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    t = uniform(11, closed=True, dtype=torch.float64)
    inn.integrate(c * t**2, t, rule="simpson").backward()
    assert abs(c.grad.item() - 1 / 3) < 1e-12
    # gradient w.r.t. interior points of the rectangle rule for f(t) = t: ∂/∂t_k Σ t_j w_j(t)
    pts = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda p: inn.integrate(p**2, p, rule="rectangle"), (pts,))
    inner = torch.tensor([0.3, 0.45], dtype=torch.float64, requires_grad=True)

    def trapezoid_of_sin(p: torch.Tensor) -> torch.Tensor:
        closed = torch.cat([p.new_zeros(1), p, p.new_ones(1)])
        return inn.integrate(torch.sin(closed), closed, rule="trapezoid")

    torch.autograd.gradcheck(trapezoid_of_sin, (inner,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_preserved(dtype):
    t = uniform(5, dtype=dtype)
    assert inn.integrate(t, t, rule="rectangle").dtype == dtype


def test_bad_input_raises_clear_errors():
    t = uniform(5, closed=True)
    with pytest.raises(inn.QuadratureError, match="unknown quadrature rule 'simpsons'"):
        quadrature_weights(t, "simpsons")
    with pytest.raises(inn.PartitionError, match="strictly increasing"):
        quadrature_weights(torch.tensor([0.0, 0.5, 0.4, 1.0]), "trapezoid")
    with pytest.raises(inn.PartitionError, match=r"\[0, 1\]"):
        quadrature_weights(torch.tensor([-0.1, 0.5, 1.0]), "rectangle")
    with pytest.raises(inn.QuadratureError, match="its own nodes"):
        quadrature_weights(uniform(4), "gauss-legendre")
    with pytest.raises(inn.ShapeError, match="partition has 4 points"):
        inn.integrate(torch.zeros(3, 5), uniform(4), dims=0)
    with pytest.raises(inn.ShapeError, match="out of range"):
        inn.integrate(torch.zeros(3, 5), uniform(5), dims=2)
    assert issubclass(inn.QuadratureError, ValueError)
