"""Running statistics of normalisations resized through their own forward (timm's
``BatchNormAct2d``, a BatchNorm subclass with the activation in its ``forward``) are tracked by
random-width training like an integral BatchNorm's."""

import copy

import pytest
import torch
from timm.layers import BatchNormAct2d
from torch import nn
from torch.utils.data import TensorDataset

import inn
from inn.layers import IntegralBatchNorm, IntegralWrapped
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


def _twins(x: torch.Tensor) -> tuple[inn.IntegralModel, inn.IntegralModel]:
    """The same network converted twice: with an ``nn.BatchNorm2d`` (an integral BatchNorm, the
    reference) and with a ``BatchNormAct2d`` without activation (resized through its own
    forward)."""
    plain = _net()
    reference = copy.deepcopy(plain)
    reference[1] = nn.BatchNorm2d(8)
    reference[1].load_state_dict(plain[1].state_dict())
    plain[1].act = nn.Identity()
    return tuple(
        inn.convert(m.eval(), x[:1], permute=False, fold_batchnorm=False) for m in (reference, plain)
    )


@pytest.mark.parametrize("channels", [None, "select"])
def test_narrow_widths_keep_statistics_as_integral_batchnorm(channels):
    """Width buckets recorded in random-width training from the module's own update, and the
    statistics measured at a width (all widths, and one width), against an integral BatchNorm
    given the same training."""
    x = torch.randn(48, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    data = TensorDataset(x, torch.arange(48) % 3)
    reference, wrapped = _twins(x)
    for imodel in (reference, wrapped):  # no measuring at the end: the buckets as recorded
        train(
            imodel, data, steps=4, batch_size=12, progress=False, statistics_batches=0, lr=0.05,
            channels=channels,
        )  # fmt: skip
    (norm,) = [m for m in reference.modules() if isinstance(m, IntegralBatchNorm)]
    layer = _wrapped(wrapped)
    recorded = layer.node_statistics[2] if channels else layer.width_counts
    assert layer.keeps_narrow_statistics and recorded.sum() > 0
    for name in ("width_statistics", "width_counts", "node_statistics"):
        torch.testing.assert_close(getattr(layer, name), getattr(norm, name), atol=1e-4, rtol=1e-4)

    def at_quarter(imodel):  # the sandwich rule's narrowest width: recorded
        imodel.resize(widths={"0:out": 2})
        out = imodel.eval()(x)
        exported = imodel.export()(x)
        imodel.resize(widths={"0:out": 8})
        return out, exported

    with torch.no_grad():
        (want, _), (got, exported) = at_quarter(reference), at_quarter(wrapped)
        kept = layer.width_counts.clone(), layer.node_statistics.clone()
        layer.width_counts.zero_()
        layer.node_statistics.zero_()
        sampled, _ = at_quarter(wrapped)  # the full width's statistics sampled instead
        layer.width_counts.copy_(kept[0])
        layer.node_statistics.copy_(kept[1])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(exported, got, atol=1e-5, rtol=1e-5)
    assert (sampled - got).abs().max() > 1e-2
    # measured at every bucket, then at the current width
    for imodel in (reference, wrapped):
        assert inn.recover.reestimate_width_statistics(imodel, [x[:24], x[24:]]) == 1
    torch.testing.assert_close(layer.width_statistics, norm.width_statistics, atol=1e-4, rtol=1e-4)
    for imodel in (reference, wrapped):
        imodel.resize(widths={"0:out": 3})
        assert inn.reestimate_batchnorm(imodel, [x]) == 1
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), reference(x), atol=1e-4, rtol=1e-4)


def test_wrapped_statistics_unchanged_by_untracked_training_passes():
    model, x = _net(), torch.randn(16, 3, 8, 8)
    imodel = inn.convert(model, x[:1], permute=False, fold_batchnorm=False).train()
    layer = _wrapped(imodel)
    before = _node_statistics(layer)
    imodel(x)  # full width, not tracking: normalised by the batch, as an integral BatchNorm
    for got, want in zip(_node_statistics(layer), before, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_wrapped_state_saved_before_buckets_loads():
    model, x = _net(), torch.randn(4, 3, 8, 8)
    imodel = inn.convert(model, x[:1], permute=False, fold_batchnorm=False)
    old = {k: v for k, v in imodel.state_dict().items() if not k.endswith(("_statistics", "counts"))}
    assert len(old) < len(imodel.state_dict())
    imodel.load_state_dict(old)  # strict
