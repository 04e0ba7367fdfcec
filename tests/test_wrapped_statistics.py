"""Running statistics of normalisations resized through their own forward (timm's
``BatchNormAct2d``, a BatchNorm subclass with the activation in its ``forward``) are tracked by
random-width training like an integral BatchNorm's."""

import copy

import torch
from timm.layers import BatchNormAct2d
from torch import nn
from torch.utils.data import TensorDataset

import inn
from inn.layers import IntegralWrapped
from inn.recover import reestimate_full_width_batchnorm
from inn.train import train


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), BatchNormAct2d(8), nn.Conv2d(8, 6, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    ).eval()  # fmt: skip


def _wrapped(imodel) -> IntegralWrapped:
    (layer,) = [m for m in imodel.modules() if isinstance(m, IntegralWrapped)]
    assert sorted(layer.tracked_buffers) == ["running_mean", "running_var"]
    return layer


def _node_statistics(layer: IntegralWrapped) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(
        getattr(layer, f"{n}_function").values.clone() for n in ("running_mean", "running_var")
    )


def test_tracked_update_at_full_width_is_the_plain_modules():
    model, x = _net(), torch.randn(16, 3, 8, 8)
    imodel = inn.convert(model, x[:1], permute=False, fold_batchnorm=False)
    layer = _wrapped(imodel)
    plain = copy.deepcopy(model).train()
    imodel.train()
    layer.track_statistics = True
    with torch.no_grad():
        torch.testing.assert_close(imodel(x), plain(x), atol=1e-5, rtol=1e-5)
    mean, var = _node_statistics(layer)
    torch.testing.assert_close(mean, plain[1].running_mean)
    torch.testing.assert_close(var, plain[1].running_var)
    # narrowed: normalised by the batch, the node values untouched
    imodel.resize(widths={"0:out": 5})
    with torch.no_grad():
        imodel(x)
    torch.testing.assert_close(_node_statistics(layer)[0], mean)


def test_random_width_training_updates_the_wrapped_statistics():
    model, x = _net(), torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    imodel = inn.convert(model, x[:1], permute=False, fold_batchnorm=False)
    layer = _wrapped(imodel)
    before = _node_statistics(layer)
    data = TensorDataset(x, torch.arange(32) % 3)
    train(imodel, data, steps=3, batch_size=8, progress=False)
    after = _node_statistics(layer)
    assert not torch.allclose(after[0], before[0]) and not torch.allclose(after[1], before[1])
    assert not layer.track_statistics  # switched off again after training


def test_full_width_reestimation_reaches_wrapped_statistics():
    """Against a hand computation: the average over batches of the batch mean and unbiased
    variance of the normalisation's input."""
    model, x = _net(), torch.randn(24, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    imodel = inn.convert(model, x[:1], permute=False, fold_batchnorm=False)
    layer = _wrapped(imodel)
    batches = [x[:8], x[8:16], x[16:]]
    reestimate_full_width_batchnorm(imodel, batches)
    with torch.no_grad():
        h = [model[0](b) for b in batches]
    mean = torch.stack([t.mean((0, 2, 3)) for t in h]).mean(0)
    var = torch.stack([t.var((0, 2, 3)) for t in h]).mean(0)
    got_mean, got_var = _node_statistics(layer)
    torch.testing.assert_close(got_mean, mean, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_var, var, atol=1e-5, rtol=1e-4)
    assert layer.module.momentum == 0.1 and not layer.track_statistics
