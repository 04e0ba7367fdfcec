"""Data-free non-uniform partitions: ordered, inside the interval, and better where it matters."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from torch import nn

import inn
from inn.continuous import equidistributed
from inn.numerics import quadrature_weights, uniform
from inn.recover import place_points


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=40),
    st.integers(1, 50),
    st.booleans(),
)
def test_equidistributed_points_are_strictly_increasing_inside(density, n, closed):
    points = equidistributed(torch.tensor(density), n, closed=closed)
    assert points.shape == (n,)
    assert (points.diff() > 0).all()
    if closed and n > 1:
        assert points[0] == 0 and points[-1] == 1
    else:
        assert ((points > 0) & (points < 1)).all()


def _curvature_density(f, closed: bool) -> torch.Tensor:
    nodes = uniform(256, closed=closed, dtype=torch.float64).numpy()
    second = np.gradient(np.gradient(f(nodes), nodes), nodes)
    return torch.tensor(np.abs(second) ** (1 / 3))


FUNCTIONS = {  # smooth, with their variation concentrated somewhere in the interval
    "steep tanh": lambda s: np.tanh((s - 0.62) / 0.03),
    "narrow bump": lambda s: np.exp(-(((s - 0.3) / 0.05) ** 2)),
    "runge": lambda s: 1 / (1 + 400 * (s - 0.5) ** 2),
}


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(("closed", "rule"), [(False, "rectangle"), (True, "trapezoid")])
def test_curvature_points_integrate_localised_functions_better_than_uniform(name, closed, rule):
    """Against scipy's adaptive quadrature: at 8 points, equidistributing |f''|^(1/3) lowers
    the quadrature error of the uniform partition."""
    f = FUNCTIONS[name]
    reference = quad(f, 0, 1, points=[0.3, 0.5, 0.62], limit=200)[0]
    density = _curvature_density(f, closed)

    def error(points: torch.Tensor) -> float:
        return abs(
            float((quadrature_weights(points, rule) * torch.tensor(f(points.numpy()))).sum())
            - reference
        )

    n = 8
    uniform_error = error(uniform(n, closed=closed, dtype=torch.float64))
    adaptive_error = error(equidistributed(density, n, closed=closed))
    assert adaptive_error < uniform_error


def test_bad_densities_are_refused():
    for bad in (torch.tensor([1.0, -1.0]), torch.tensor([]), torch.tensor([float("nan")])):
        with pytest.raises(inn.PartitionError, match="density"):
            equidistributed(bad, 4)
    with pytest.raises(inn.PartitionError, match="floor"):
        equidistributed(torch.ones(3), 4, floor=0)


def test_place_points_on_a_model_moves_points_towards_the_rough_channels():
    """A Linear whose output channels are flat on the first half and vary on the second: the
    points crowd into the second half; the model stays exportable and the state restores."""
    first, second = nn.Linear(3, 64), nn.Linear(64, 2)
    s = torch.linspace(0, 1, 64)
    rough = torch.where(s > 0.5, torch.sin(40 * s), torch.zeros(()))
    with torch.no_grad():
        first.weight.copy_(rough[:, None].expand(64, 3))
        first.bias.zero_()
        second.weight.copy_(rough[None].expand(2, 64))
    model = nn.Sequential(first, nn.ReLU(), second).eval()
    imodel = inn.convert(model, torch.randn(1, 3), permute=False).resize(widths={"0:out": 16})
    assert place_points(imodel) == 1
    points = imodel._partitions["0:out"].points().detach()
    assert (points > 0.5).sum() >= 11
    x = torch.randn(5, 3)
    with torch.no_grad():
        torch.testing.assert_close(imodel.export()(x), imodel(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(inn.InnError, match="unknown density"):
        place_points(imodel, density="magic")


def test_tuning_starts_from_the_placed_points(trained_digits_cnn, digits):
    x = digits[0]
    imodel = inn.convert(trained_digits_cnn, x[:1]).resize(widths={"conv1:out": 12})
    assert place_points(imodel) == 1
    part = imodel._partitions["conv1:out"]
    placed = part.points().detach().clone()
    assert not torch.allclose(placed, uniform(12), atol=1e-3)
    inn.tune_partition(imodel, [x[:32]], steps=1, lr=1e-9)
    torch.testing.assert_close(part.points().detach(), placed, atol=1e-6, rtol=0)
