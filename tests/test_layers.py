"""Integral layers against hand-built torch layers, at full width and resampled.

The resampled reference is computed here, independently of the library: a direct numpy
implementation of Keys' cubic convolution (with his boundary condition) and the rectangle rule's
weights N/m by hand.
"""

import copy
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import inn


def keys_resample(values: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Resample the N nodes (k + 0.5)/N along ``axis`` at the m points (j + 0.5)/m."""
    v = np.moveaxis(values.astype(np.float64), axis, 0)
    n = v.shape[0]
    if n == m:
        return values.astype(np.float64)
    ghost = np.concatenate([[3 * v[0] - 3 * v[1] + v[2]], v, [3 * v[-1] - 3 * v[-2] + v[-3]]])

    def u(s: float) -> float:
        s = abs(s)
        if s <= 1:
            return 1.5 * s**3 - 2.5 * s**2 + 1
        if s < 2:
            return -0.5 * s**3 + 2.5 * s**2 - 4 * s + 2
        return 0.0

    out = []
    for j in range(m):
        pos = ((j + 0.5) / m - 0.5 / n) * n  # in units of the node spacing, from node 0
        cell = min(max(int(np.floor(pos)), 0), n - 2)
        s = pos - cell
        out.append(sum(ghost[cell + k + 1] * u(s - k) for k in (-1, 0, 1, 2)))
    return np.moveaxis(np.stack(out), 0, axis)


def resized(layer: inn.layers.IntegralLayer, **sizes: int) -> inn.layers.IntegralLayer:
    for role, size in sizes.items():
        layer.partitions[role][0].resize(size)
    return layer


def rand_conv(cls, *args, **kwargs):
    torch.manual_seed(0)
    return cls(*args, **kwargs)


@pytest.mark.parametrize(
    "conv,shape",
    [
        (rand_conv(nn.Conv1d, 6, 5, 3, stride=2, padding=1), (2, 6, 11)),
        (rand_conv(nn.Conv2d, 6, 5, 3, padding=2, dilation=2), (2, 6, 9, 9)),
        (rand_conv(nn.Conv2d, 6, 4, 3, padding=1, groups=2, padding_mode="reflect"), (2, 6, 7, 7)),
        (rand_conv(nn.Conv2d, 6, 6, 3, padding=1, groups=6, bias=False), (2, 6, 7, 7)),
        (rand_conv(nn.Conv2d, 6, 8, 1, padding="same"), (2, 6, 5, 5)),
        (rand_conv(nn.Conv3d, 4, 5, 3, padding=1, stride=(1, 2, 2)), (1, 4, 5, 6, 6)),
    ],
)
def test_conv_at_full_width_equals_the_torch_layer(conv, shape):
    layer = {1: inn.layers.IntegralConv1d, 2: inn.layers.IntegralConv2d, 3: inn.layers.IntegralConv3d}[
        conv.weight.dim() - 2
    ](conv)
    x = torch.randn(shape)
    expected = conv(x)
    assert torch.allclose(layer(x), expected, atol=1e-6, rtol=1e-5)
    plain = layer.to_discrete()
    assert type(plain) is type(conv) and plain.groups == conv.groups
    assert torch.allclose(plain(x), expected, atol=1e-6, rtol=1e-5)


def test_dense_conv2d_resampled_equals_independent_reference():
    conv = rand_conv(nn.Conv2d, 10, 12, 3, padding=1)
    layer = resized(inn.layers.IntegralConv2d(conv), out=7, **{"in": 6})
    w = conv.weight.detach().numpy()
    ref = keys_resample(keys_resample(w, 7, axis=0), 6, axis=1) * (10 / 6)  # q = 1/6, scale q*N
    ref_b = keys_resample(conv.bias.detach().numpy(), 7, axis=0)
    x = torch.randn(2, 6, 8, 8)
    expected = F.conv2d(x.double(), torch.from_numpy(ref), torch.from_numpy(ref_b), padding=1)
    assert torch.allclose(layer(x).double(), expected, atol=1e-5)
    assert layer.out_channels == 7 and layer.in_channels == 6


def test_grouped_conv_resamples_each_group_with_shared_partitions():
    conv = rand_conv(nn.Conv2d, 8, 6, 3, padding=1, groups=2)  # 3 out, 4 in per group
    layer = resized(inn.layers.IntegralConv2d(conv), out=2, **{"in": 3})
    assert (layer.in_channels, layer.out_channels, layer.groups) == (6, 4, 2)
    w = conv.weight.detach().numpy().reshape(2, 3, 4, 3, 3)
    ref = keys_resample(keys_resample(w, 2, axis=1), 3, axis=2).reshape(4, 3, 3, 3) * (4 / 3)
    ref_b = keys_resample(conv.bias.detach().numpy().reshape(2, 3), 2, axis=1).reshape(4)
    x = torch.randn(1, 6, 5, 5)
    expected = F.conv2d(
        x.double(), torch.from_numpy(ref), torch.from_numpy(ref_b), padding=1, groups=2
    )
    assert torch.allclose(layer(x).double(), expected, atol=1e-5)


def test_depthwise_conv_input_and_output_are_one_axis():
    conv = rand_conv(nn.Conv2d, 9, 9, 3, padding=1, groups=9)
    layer = inn.layers.IntegralConv2d(conv)
    assert layer.partitions["in"][0] is layer.partitions["out"][0]
    layer.partitions["out"][0].resize(5)
    assert (layer.in_channels, layer.out_channels, layer.groups) == (5, 5, 5)
    ref = keys_resample(conv.weight.detach().numpy(), 5, axis=0)  # no sum over channels: no q
    ref_b = keys_resample(conv.bias.detach().numpy(), 5, axis=0)
    x = torch.randn(1, 5, 6, 6)
    expected = F.conv2d(
        x.double(), torch.from_numpy(ref), torch.from_numpy(ref_b), padding=1, groups=5
    )
    assert torch.allclose(layer(x).double(), expected, atol=1e-5)
    with pytest.raises(inn.ShapeError, match="one axis"):
        parts = {"out": inn.continuous.Partition(9), "in": inn.continuous.Partition(9)}
        inn.layers.IntegralConv2d(conv, parts)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_with_output_blocks_resamples_whole_sub_pixel_blocks(groups):
    """Before a PixelShuffle(2), 3 channels per group of 4 sub-pixels each; sub-pixel k of the
    resampled conv is the resampling of sub-pixel k of the original (hand reference)."""
    conv = rand_conv(nn.Conv2d, 4, 12 * groups, 3, padding=1, groups=groups)
    layer = inn.layers.IntegralConv2d(conv, out_block=4)
    x = torch.randn(2, 4, 6, 6)
    assert torch.allclose(layer(x), conv(x), atol=1e-6)
    layer.partitions["out"][0].resize(2)
    assert layer.out_channels == 8 * groups and layer.to_discrete().out_channels == 8 * groups
    w = conv.weight.detach().numpy().reshape(groups, 3, 4, 4 // groups, 3, 3)
    ref = keys_resample(w, 2, axis=1).reshape(8 * groups, 4 // groups, 3, 3)
    ref_b = keys_resample(conv.bias.detach().numpy().reshape(groups, 3, 4), 2, axis=1)
    expected = F.conv2d(x.double(), torch.from_numpy(ref), torch.from_numpy(ref_b.reshape(-1)),
                        padding=1, groups=groups)  # fmt: skip
    assert torch.allclose(layer(x).double(), expected, atol=1e-5)
    with pytest.raises(inn.ShapeError, match="out_block=5"):
        inn.layers.IntegralConv2d(conv, out_block=5)


def test_linear_with_channel_blocks_and_a_discrete_output():
    torch.manual_seed(1)
    linear = nn.Linear(5 * 4, 3)  # after flatten of 5 channels x 2 x 2
    layer = inn.layers.IntegralLinear(linear, {"in": inn.continuous.Partition(5)}, in_block=4)
    x = torch.randn(7, 20)
    assert torch.allclose(layer(x), linear(x), atol=1e-6)
    layer.partitions["in"][0].resize(3)
    assert layer.in_features == 12 and layer.out_features == 3
    w = linear.weight.detach().numpy().reshape(3, 5, 4)
    ref = (keys_resample(w, 3, axis=1) * (5 / 3)).reshape(3, 12)
    expected = x[:, :12].double() @ torch.from_numpy(ref).T + linear.bias.double()
    assert torch.allclose(layer(x[:, :12]).double(), expected, atol=1e-5)


def test_conv_transpose_full_width_and_resampled():
    conv = rand_conv(nn.ConvTranspose2d, 6, 4, 3, stride=2, padding=1, output_padding=1)
    layer = inn.layers.IntegralConvTranspose2d(conv)
    x = torch.randn(2, 6, 5, 5)
    assert torch.allclose(layer(x), conv(x), atol=1e-6)
    assert torch.allclose(layer.to_discrete()(x), conv(x), atol=1e-6)
    resized(layer, **{"in": 4, "out": 3})
    ref = keys_resample(keys_resample(conv.weight.detach().numpy(), 4, axis=0), 3, axis=1) * (6 / 4)
    ref_b = keys_resample(conv.bias.detach().numpy(), 3, axis=0)
    xs = torch.randn(1, 4, 5, 5)
    expected = F.conv_transpose2d(
        xs.double(), torch.from_numpy(ref), torch.from_numpy(ref_b), 2, 1, 1
    )
    assert torch.allclose(layer(xs).double(), expected, atol=1e-5)


@pytest.mark.parametrize(
    "cls,icls,shape",
    [
        (nn.BatchNorm1d, inn.layers.IntegralBatchNorm1d, (4, 7)),
        (nn.BatchNorm2d, inn.layers.IntegralBatchNorm2d, (4, 7, 3, 3)),
    ],
)
def test_batchnorm_full_width_resampled_and_training(cls, icls, shape):
    torch.manual_seed(2)
    bn = cls(7).eval()
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    layer = icls(bn).eval()
    x = torch.randn(shape)
    assert torch.allclose(layer(x), bn(x), atol=1e-6)
    layer.partitions["out"][0].resize(4)
    params = [
        keys_resample(t.detach().numpy(), 4, axis=0)
        for t in (bn.running_mean, bn.running_var, bn.weight, bn.bias)
    ]
    xs = torch.randn(shape[0], 4, *shape[2:]).double()
    expected = F.batch_norm(xs, *(torch.from_numpy(p) for p in params), False, 0.0, bn.eps)
    assert torch.allclose(layer(xs.float()).double(), expected, atol=1e-5)
    exported = layer.to_discrete()
    assert isinstance(exported, cls) and exported.num_features == 4
    assert torch.allclose(exported(xs.float()), layer(xs.float()), atol=1e-6)
    layer.train()  # batch statistics, like nn.BatchNorm in training mode
    assert torch.allclose(
        layer(xs.float()),
        F.batch_norm(
            xs.float(), None, None, layer.sampled()["weight"], layer.sampled()["bias"], True
        ),
        atol=1e-5,
    )


def test_assign_inverts_sampling_at_non_uniform_points():
    conv = rand_conv(nn.Conv2d, 5, 6, 1).double()
    layer = inn.layers.IntegralConv2d(conv)
    part = layer.partitions["in"][0]
    part.make_trainable().double().reset(torch.tensor([0.05, 0.3, 0.35, 0.6, 0.9]))
    target = torch.randn(6, 5, 1, 1, dtype=torch.float64)
    layer.assign("weight", target)
    assert torch.allclose(layer.sampled()["weight"], target, atol=1e-10)


def test_gradients_reach_values_and_partition_points():
    layer = inn.layers.IntegralConv2d(rand_conv(nn.Conv2d, 6, 4, 3))
    part = layer.partitions["in"][0]
    part.resize(4)
    part.make_trainable()
    layer(torch.randn(1, 4, 5, 5)).square().sum().backward()
    assert part.trainable.logits.grad.abs().sum() > 0
    assert layer.weight_function.values.grad.abs().sum() > 0


def test_eval_cache_is_reused_and_invalidated():
    layer = inn.layers.IntegralConv2d(rand_conv(nn.Conv2d, 6, 4, 3)).eval()
    x = torch.randn(1, 6, 5, 5)
    with torch.no_grad():
        first = layer.sampled()
        assert layer.sampled() is first  # cached
        layer.weight_function.values.mul_(2)  # in-place change bumps the version
        assert torch.allclose(
            layer(x), 2 * F.conv2d(x, first["weight"], None) + first["bias"][:, None, None]
        )
        layer.partitions["out"][0].resize(3)
        assert layer(x).shape[1] == 3
        # a replaced parameter and moved trainable points invalidate the cache as well
        before = layer.sampled()["weight"]
        layer.weight_function.values = nn.Parameter(3 * layer.weight_function.values)
        torch.testing.assert_close(layer.sampled()["weight"], 3 * before)
        logits = layer.partitions["in"][0].make_trainable().logits
        before = layer.sampled()["weight"]
        logits.add_(torch.linspace(0.0, 1.0, logits.numel()))
        assert not torch.allclose(layer.sampled()["weight"], before)


def test_state_dict_deepcopy_and_pickle_keep_sizes():
    layer = inn.layers.IntegralConv2d(rand_conv(nn.Conv2d, 6, 4, 3))
    resized(layer, out=3, **{"in": 5})
    layer.partitions["in"][0].make_trainable()
    fresh = inn.layers.IntegralConv2d(rand_conv(nn.Conv2d, 6, 4, 3))
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(1, 5, 6, 6)
    assert torch.equal(fresh(x), layer(x))
    assert torch.equal(copy.deepcopy(layer)(x), layer(x))
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), layer(x))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtypes(dtype):
    conv = rand_conv(nn.Conv2d, 6, 4, 3).to(dtype)
    layer = inn.layers.IntegralConv2d(conv)
    x = torch.randn(1, 6, 5, 5, dtype=dtype)
    assert layer(x).dtype == dtype
    assert torch.allclose(
        layer(x).float(), conv(x).float(), atol=1e-2 if dtype == torch.bfloat16 else 1e-12
    )
    resized(layer, **{"in": 3})
    assert layer(x[:, :3]).dtype == dtype


def test_bad_input():
    conv = rand_conv(nn.Conv2d, 6, 4, 3)
    with pytest.raises(inn.ShapeError, match="full sizes"):
        inn.layers.IntegralConv2d(conv, {"out": inn.continuous.Partition(5)})
    with pytest.raises(inn.ShapeError, match="channel roles"):
        inn.layers.IntegralConv2d(conv, {"middle": inn.continuous.Partition(4)})
    with pytest.raises(inn.ShapeError, match=r"nn\.Conv2d"):
        inn.layers.IntegralConv2d(nn.Linear(3, 4))
    with pytest.raises(inn.ShapeError, match="in_block"):
        inn.layers.IntegralLinear(nn.Linear(10, 2), in_block=3)
    with pytest.raises(inn.PartitionError, match="positive int"):
        inn.continuous.Partition(4).resize(0)
    with pytest.raises(inn.ShapeError, match=r"nn\.ConvTranspose2d"):
        inn.layers.IntegralConvTranspose2d(nn.Conv2d(4, 4, 3))


def test_inference_mode_first_then_training():
    # memoised uniform taps and weights made under inference_mode must not break autograd later
    layer = inn.layers.IntegralConv2d(rand_conv(nn.Conv2d, 7, 5, 3))
    resized(layer, out=3, **{"in": 4})
    x = torch.randn(1, 4, 6, 6)
    with torch.inference_mode():
        expected = layer(x)
    out = layer.train()(x)
    out.sum().backward()
    assert torch.allclose(out.detach(), expected) and layer.weight_function.values.grad is not None
