"""Partitions: layouts, Gauss-Legendre nodes, composites, trainable points that stay ordered."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import inn
from inn.continuous import TrainablePartition, composite, random_uniform
from inn.numerics import check_partition, gauss_legendre, uniform


def test_uniform_layouts():
    assert torch.allclose(uniform(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(uniform(3, closed=True), torch.tensor([0.0, 0.5, 1.0]))
    assert uniform(1).tolist() == [0.5] and uniform(1, closed=True).tolist() == [0.5]
    assert uniform(3, dtype=torch.float64).dtype == torch.float64


def test_random_uniform_size_in_range_and_seeded():
    sizes = {
        random_uniform(3, 6, generator=torch.Generator().manual_seed(s)).numel() for s in range(40)
    }
    assert sizes == {3, 4, 5, 6}
    a = random_uniform(3, 60, generator=torch.Generator().manual_seed(7))
    b = random_uniform(3, 60, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_gauss_legendre_matches_numpy_on_interval():
    x, w = np.polynomial.legendre.leggauss(6)
    nodes, weights = gauss_legendre(6, a=2.0, b=5.0, dtype=torch.float64)
    assert np.allclose(nodes.numpy(), 3.5 + 1.5 * x) and np.allclose(weights.numpy(), 1.5 * w)


def test_composite_maps_parts_to_disjoint_subintervals():
    p = composite([uniform(2), uniform(3)])  # lengths 2/5, 3/5
    expected = torch.tensor([0.1, 0.3, 0.4 + 0.6 / 6, 0.4 + 0.3, 0.4 + 0.6 * 5 / 6])
    assert torch.allclose(p, expected)
    check_partition(p)
    with pytest.raises(inn.PartitionError, match="overlap or touch"):
        composite([uniform(3, closed=True), uniform(3, closed=True)])
    with pytest.raises(inn.PartitionError, match="part 1"):
        composite([uniform(2), torch.tensor([0.5, 1.5])])


def test_check_partition_errors():
    with pytest.raises(inn.PartitionError, match="strictly increasing"):
        check_partition(torch.tensor([0.1, 0.1, 0.2]))
    with pytest.raises(inn.PartitionError, match=r"in \[0, 1\]"):
        check_partition(torch.tensor([0.1, 1.2]))
    with pytest.raises(inn.PartitionError, match="non-finite"):
        check_partition(torch.tensor([0.1, float("nan")]))
    with pytest.raises(inn.PartitionError, match="1-D"):
        check_partition(torch.zeros(2, 2))
    with pytest.raises(inn.PartitionError, match="at least one point"):
        uniform(0)


@pytest.mark.parametrize("closed", [False, True])
def test_trainable_partition_starts_at_init_and_has_gradients(closed):
    init = uniform(6, closed=closed, dtype=torch.float64)
    part = TrainablePartition(6, init, closed=closed)
    assert torch.allclose(part().double(), init, atol=1e-6)
    part().pow(2).sum().backward()
    assert part.logits.grad is not None and part.logits.grad.abs().sum() > 0  # not degenerate
    part.reset(
        torch.tensor([0.0, 0.1, 0.2, 0.5, 0.9, 1.0])
        if closed
        else torch.tensor([0.05, 0.1, 0.2, 0.5, 0.9, 0.95])
    )
    assert part()[3].item() == pytest.approx(0.5, abs=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 40),
    closed=st.booleans(),
    lr=st.floats(1.0, 1e4),
    seed=st.integers(0, 2**16),
)
def test_trainable_partition_stays_strictly_increasing_inside(n, closed, lr, seed):
    torch.manual_seed(seed)
    part = TrainablePartition(n, closed=closed)
    if closed and n == 1:  # nothing to train: the single point sits mid-interval
        assert part().tolist() == [0.5] and part.logits.numel() == 0
        return
    target = torch.rand(n) * 3 - 1  # pulls points far outside [0, 1] and out of order
    opt = torch.optim.SGD(part.parameters(), lr=lr)
    for _ in range(30):
        opt.zero_grad()
        ((part() - target) ** 2).sum().backward()
        opt.step()
    points = part().detach()
    check_partition(points)  # strictly increasing, finite, within [0, 1]
    if not closed:
        assert points.min() > 0 and points.max() < 1
    elif n > 1:
        assert points[0] == 0 and points[-1] == 1


def test_trainable_partition_follows_module_device_and_dtype():
    part = TrainablePartition(5).double()
    assert part().dtype == torch.float64
