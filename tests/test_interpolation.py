"""Cubic convolution interpolation: the kernel, exactness at nodes, polynomial reproduction,
gradients with respect to node values and to points."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import inn
from inn.numerics import cubic_kernel, interpolate, interpolation_matrix, uniform


def test_kernel_hand_values():
    s = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, -0.5, 2.5], dtype=torch.float64)
    # Keys a = -0.5: u(0.5) = 1.5*0.125 - 2.5*0.25 + 1 = 0.5625; u(1.5) = -0.0625
    expected = torch.tensor([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.5625, 0.0], dtype=torch.float64)
    assert torch.allclose(cubic_kernel(s), expected)


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 17])
def test_exact_at_nodes(n, closed):
    nodes = uniform(n, closed=closed)
    assert torch.equal(interpolation_matrix(n, nodes, closed=closed), torch.eye(n))
    values = torch.randn(3, n)
    assert torch.equal(interpolate(values, nodes, closed=closed), values)


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize("degree", [0, 1, 2])
def test_reproduces_quadratics_everywhere(degree, closed):
    n = 12
    nodes = uniform(n, closed=closed, dtype=torch.float64)
    coeffs = torch.tensor([0.3, -1.2, 2.5], dtype=torch.float64)[: degree + 1]
    poly = lambda t: sum(c * t**k for k, c in enumerate(coeffs))  # noqa: E731
    t = torch.linspace(0, 1, 301, dtype=torch.float64)
    got = interpolation_matrix(n, t, closed=closed) @ poly(nodes)
    assert torch.allclose(got, poly(t), atol=1e-12)


def test_cubic_is_third_order_accurate_away_from_the_ends():
    t = torch.linspace(0.2, 0.8, 101, dtype=torch.float64)
    errors = []
    for n in (16, 32, 64):
        nodes = uniform(n, dtype=torch.float64)
        errors.append(
            (interpolation_matrix(n, t) @ torch.sin(6 * nodes) - torch.sin(6 * t)).abs().max()
        )
    assert errors[0] / errors[1] > 6 and errors[1] / errors[2] > 6  # ~8 for order 3


def test_matrix_rows_sum_to_one_and_resampling_shapes():
    m = interpolation_matrix(10, torch.rand(7))
    assert m.shape == (7, 10)
    assert torch.allclose(m.sum(1), torch.ones(7), atol=1e-6)
    assert interpolate(torch.randn(2, 10, 3), uniform(4), dim=1).shape == (2, 4, 3)


def test_gradcheck_values_and_points():
    values = torch.randn(9, 2, dtype=torch.float64, requires_grad=True)
    points = torch.tensor([0.03, 0.21, 0.51, 0.77, 0.99], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, p: interpolate(v, p, dim=0), (values, points))
    closed_pts = torch.tensor([0.1, 0.4, 0.8], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda v, p: interpolate(v, p, dim=0, closed=True), (values, closed_pts)
    )


def test_moving_points_changes_the_result():
    # a partition's points must matter (partition tuning relies on it)
    values = torch.randn(8)
    a = interpolate(values, uniform(5))
    b = interpolate(values, uniform(5) + 0.02)
    assert not torch.allclose(a, b)
    p = uniform(5).requires_grad_()
    interpolate(values, p).sum().backward()
    assert p.grad.abs().sum() > 0


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 30), m=st.integers(1, 30), seed=st.integers(0, 1000))
def test_linear_functions_resample_exactly(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, generator=g, dtype=torch.float64)
    nodes = uniform(n, dtype=torch.float64)
    t = uniform(m, dtype=torch.float64)
    assert torch.allclose(interpolate(a + b * nodes, t), a + b * t, atol=1e-10)


def test_bad_input():
    with pytest.raises(inn.InterpolationError, match="1-D"):
        interpolation_matrix(4, torch.zeros(2, 2))
    with pytest.raises(inn.InterpolationError, match="floating point"):
        interpolation_matrix(4, torch.tensor([0, 1]))
    with pytest.raises(inn.InterpolationError, match="out of range"):
        interpolate(torch.zeros(3, 4), uniform(2), dim=2)
