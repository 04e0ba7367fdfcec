"""Smoothing the continuous weights: rougher weights get smoother, outputs are kept."""

import torch

import inn
from inn.layers import IntegralLayer
from inn.recover import roughness, smooth_weights


def test_roughness_by_hand():
    v = torch.tensor([[0.0, 1.0, 0.0, 1.0]])  # second differences: -2, 2
    assert torch.isclose(roughness(v, [1], order=2), torch.tensor(4.0 / 0.5))
    assert roughness(torch.ones(3, 5), [0, 1]) == 0


def test_smoothing_lowers_roughness_keeps_outputs_and_widths(trained_digits_cnn, digits):
    x, y, xt, _ = digits
    calib = [(x[:64], y[:64]), (x[64:128], y[64:128])]
    imodel = inn.convert(trained_digits_cnn, x[:2])
    name = imodel.resizable_groups[0].name
    imodel.resize(widths={name: 5})

    def total_roughness() -> float:
        layers = [
            m
            for m in imodel.modules()
            if isinstance(m, IntegralLayer) and "weight" in m.channel_axes()
        ]
        return sum(
            roughness(m.weight_function.values, list(m.channel_axes()["weight"])).item()
            for m in layers
        )

    before = total_roughness()
    biases = {k: v.clone() for k, v in imodel.state_dict().items() if "bias" in k}
    report = smooth_weights(imodel, calib, strength=1.0, steps=30)
    assert total_roughness() < before
    assert report.loss_after <= report.loss_before
    assert {g.name: g.size for g in imodel.groups}[name] == 5  # widths restored
    assert all(torch.equal(v, imodel.state_dict()[k]) for k, v in biases.items())
    imodel.resize(widths={g.name: g.full_size for g in imodel.resizable_groups})
    with torch.no_grad():
        agree = (imodel(xt).argmax(1) == trained_digits_cnn(xt).argmax(1)).float().mean()
    assert agree > 0.95
