"""Sparse resampling at uniform partitions (the training fast path) against dense references.

References: :func:`inn.numerics.interpolation_matrix` (dense, itself checked against Keys'
kernel in test_interpolation.py) combined with ``torch.block_diag`` / ``torch.kron``, and the
general sampling path of the layers (trainable points, autograd through the taps).
"""

import pytest
import torch
from torch import nn

import inn
from inn.continuous import resample as resample_module
from inn.continuous.resample import plan_uniform, resample_uniform
from inn.numerics import interpolation_matrix, resampling_matrix, uniform

D = torch.float64


def dense(segments, sizes, closed=False):
    return torch.block_diag(
        *(
            interpolation_matrix(n, uniform(m, closed=closed, dtype=D), closed=closed)
            for n, m in zip(segments, sizes, strict=True)
        )
    )


@pytest.mark.parametrize("closed", [False, True])
@pytest.mark.parametrize(
    "segments, sizes",
    [((8,), (5,)), ((3,), (7,)), ((2,), (5,)), ((1, 6, 4), (3, 6, 2)), ((10, 7), (4, 3))],
)
def test_one_axis_matches_dense_block_diagonal(segments, sizes, closed):
    matrix, transpose = resampling_matrix([(segments, sizes)], closed=closed, dtype=D)
    reference = dense(segments, sizes, closed)
    assert matrix.layout == torch.sparse_csr
    assert torch.allclose(matrix.to_dense(), reference, atol=1e-14)
    assert torch.allclose(transpose.to_dense(), reference.T, atol=1e-14)


def test_two_axes_are_the_kronecker_product_with_row_scale():
    axes = [((6,), (4,)), ((3, 5), (2, 3))]
    scale = torch.rand(4 * 5, dtype=D) + 0.5
    matrix, transpose = resampling_matrix(axes, row_scale=scale, dtype=D)
    reference = scale[:, None] * torch.kron(dense((6,), (4,)), dense((3, 5), (2, 3)))
    assert torch.allclose(matrix.to_dense(), reference, atol=1e-14)
    assert torch.allclose(transpose.to_dense(), reference.T, atol=1e-14)


@pytest.mark.parametrize(  # one matrix per axis (too many rows / asked) or one Kronecker product
    "max_rows, kronecker", [(1, True), (1 << 16, True), (1 << 16, False)]
)
@pytest.mark.parametrize("in_sizes", [(2, 2), (2, 4)])  # scaled axis resampled / kept
def test_plan_matches_axis_by_axis_dense_products(monkeypatch, max_rows, kronecker, in_sizes):
    monkeypatch.setattr(resample_module, "KRONECKER_MAX_ROWS", max_rows)
    values = torch.randn(1, 9, 6, 3, 2, dtype=D, requires_grad=True)
    scale = torch.rand(sum(in_sizes), dtype=D) + 0.5
    plan = plan_uniform(
        values.shape,
        {1: (9,), 2: (2, 4)},
        {1: (5,), 2: in_sizes},
        closed=False,
        scale=(2, scale),
        merge=(0, 1),
        dtype=D,
        kronecker=kronecker,
    )
    resampled_axes = 1 if in_sizes == (2, 4) else 2
    assert len(plan.steps) == (1 if kronecker and max_rows > 1 else resampled_axes)
    (out,) = resample_uniform([plan], [values])
    m_out, m_in = dense((9,), (5,)), scale[:, None] * dense((2, 4), in_sizes)
    reference = torch.einsum("oO,bOIhw,iI->boihw", m_out, values, m_in).flatten(0, 1)
    assert out.shape == (5, sum(in_sizes), 3, 2) and out.is_contiguous()
    assert torch.allclose(out, reference, atol=1e-13)
    assert torch.autograd.gradcheck(lambda v: resample_uniform([plan], [v])[0], (values,))


def test_layers_resample_axis_by_axis_with_memoised_matrices():
    """Layers never build a matrix per combination of sizes (random widths rarely repeat one)."""
    layer = inn.layers.IntegralConv2d(nn.Conv2d(12, 10, 3))
    layer.partitions["out"][0].resize(7)
    layer.partitions["in"][0].resize(5)
    layer.sampled()
    (plans,) = layer._plans.values()
    assert [len(step.dims) for step in plans["weight"].steps] == [1, 1]


def test_full_width_plans_are_at_most_an_elementwise_product():
    shape, segments = (4, 6, 3), {0: (4,), 1: (2, 4)}
    plan = plan_uniform(shape, segments, segments, closed=False)
    assert plan.steps == () and plan.factors is None and plan.shape == shape
    scaled = plan_uniform(shape, segments, segments, closed=False, scale=(1, torch.rand(6)))
    assert scaled.steps == () and scaled.factors.shape == (1, 6, 1)


def test_outputs_of_buffers_do_not_require_grad():
    bn = nn.BatchNorm1d(6)
    bn.running_mean.normal_()
    layer = inn.layers.IntegralBatchNorm1d(bn)
    layer.partitions["out"][0].resize(4)
    tensors = layer.sampled()
    assert tensors["weight"].requires_grad
    assert not tensors["running_mean"].requires_grad and not tensors["running_var"].requires_grad


def test_uniform_fast_path_equals_general_path_in_values_and_gradients():
    """A trainable partition initialised at the uniform points takes the general path (its
    points, a softmax of gaps, match the uniform ones to ~1e-8: hence the tolerances)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 10, 3).double()
    fast = inn.layers.IntegralConv2d(conv, rule="trapezoid")
    fast.partitions["out"][0].resize(7)
    fast.partitions["in"][0].resize(5)
    general = inn.layers.IntegralConv2d(conv, rule="trapezoid")
    general.load_state_dict(fast.state_dict())
    for part in general.partitions.values():
        part[0].make_trainable()
    general.double()  # the trained points in float64 too
    x = torch.randn(2, 5, 6, 6, dtype=D)
    out_fast, out_general = fast(x), general(x)
    assert torch.allclose(out_fast, out_general, atol=1e-6)
    out_fast.square().sum().backward()
    out_general.square().sum().backward()
    for name in ("weight_function.values", "bias_function.values"):
        grad_fast = fast.get_parameter(name).grad
        grad_general = general.get_parameter(name).grad
        assert (grad_fast - grad_general).norm() <= 1e-6 * grad_general.norm(), name


def test_half_precision_values_sample_in_their_dtype():
    conv = nn.Conv2d(8, 6, 3).half()
    layer = inn.layers.IntegralConv2d(conv)
    layer.partitions["out"][0].resize(4)
    weight = layer.sampled()["weight"]
    assert weight.dtype == torch.float16 and weight.shape == (4, 8, 3, 3)
