"""Image reconstruction on fixed vs trainable partitions: equal parameter counts, partitions
that stay in their domain, and the uniform fit against an independent least-squares solve."""

import numpy as np
import pytest
import torch

from inn.budget import count_parameters
from inn.numerics import interpolation_matrix
from innlab.experiments import reconstruction as rec


@pytest.fixture(scope="module")
def target():
    return rec.image("camera", size=32)


@pytest.mark.parametrize("budget", [150, 300, 600, 1200])
def test_the_three_methods_have_equal_parameter_counts(target, budget):
    plan = rec.equal_budgets(budget)
    counts = {m: count_parameters(rec.represent(m, target, plan)) for m in rec.METHODS}
    assert set(counts.values()) == {plan.parameters}, counts
    assert abs(plan.parameters - budget) <= 0.1 * budget


def test_uniform_fit_is_the_least_squares_solution(target):
    model = rec.Uniform(target, (7, 9))
    pixels = (np.arange(32) + 0.5) / 32
    a = interpolation_matrix(7, torch.from_numpy(pixels)).numpy()
    b = interpolation_matrix(9, torch.from_numpy(pixels)).numpy()
    design = np.kron(a, b)  # vec(A V B^T) = (A kron B) vec(V), row-major
    v, *_ = np.linalg.lstsq(design, target.numpy().reshape(-1), rcond=None)
    assert np.allclose(model.values.detach().numpy().reshape(-1), v, atol=1e-8)


def test_separable_at_uniform_points_equals_the_uniform_lattice(target):
    sep = rec.Separable(target, (6, 8))
    uni = rec.Uniform(target, (6, 8))
    with torch.no_grad():
        assert torch.allclose(sep(), uni(), atol=1e-5)


def test_trainable_partitions_stay_inside_the_domain_and_fitting_helps(target):
    plan = rec.equal_budgets(150)
    for method in ("separable", "scattered"):
        model = rec.represent(method, target, plan)
        goal = target.to(next(model.parameters()).dtype)
        start = float(torch.nn.functional.mse_loss(model(), goal).detach())
        assert rec.fit(model, goal, steps=20) <= start  # from the least-squares start
        with torch.no_grad():  # push the points hard: they must stay valid
            for p in model.parameters():
                if p is not model.values:
                    p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * 5)
            pushed = float(torch.nn.functional.mse_loss(model(), goal))
        after = rec.fit(model, goal, steps=60, lr=0.05)
        if method == "separable":
            for part in (model.rows, model.cols):
                points = part()
                assert (points > 0).all() and (points < 1).all() and (points.diff() > 0).all()
        else:
            assert (model.points > 0).all() and (model.points < 1).all()
        assert np.isfinite(pushed) and after < pushed
