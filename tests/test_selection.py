"""Selected channels (a partition kind) and the per-group choice between selection and
resampling, against hand-sliced networks and brute force."""

import itertools

import pytest
import torch
from torch import nn

import inn
from inn.continuous import Partition
from inn.recover import (
    BIAS_CALIBRATION,
    channel_scores,
    choose_sampling,
    mean_loss,
    select_channels,
)
from inn.recover.batches import split_holdout
from tests.conftest import two_conv_net

_net = two_conv_net


@pytest.mark.parametrize("rule", ["rectangle", "trapezoid", "simpson"])
def test_selected_points_are_lattice_nodes_with_their_full_weights(rule):
    part = Partition(7, rule=rule)
    full_points, full_weights = part.points(), part.full_weights()
    part.select([5, 0, 2, 5])  # unsorted, repeated: kept once, in lattice order
    assert part.size == 3 and part.selected == (0, 2, 5) and not part.is_uniform
    torch.testing.assert_close(part.points(), full_points[[0, 2, 5]])
    torch.testing.assert_close(part.weights(), full_weights[[0, 2, 5]])
    part.resize(3)
    assert part.is_uniform and part.selected is None
    with pytest.raises(inn.InnError, match="select needs node indices"):
        part.select([0, 7])


def test_selection_survives_the_state_dict_and_widths_kept():
    model, x = _net(), torch.randn(2, 3, 8, 8)
    imodel = inn.convert(model, x, permute=False)
    imodel.partition("0:out").select([1, 3, 4])
    again = inn.convert(model, x, permute=False)
    again.load_state_dict(imodel.state_dict())
    assert again.partition("0:out").selected == (1, 3, 4)
    with again.widths_kept():
        again.resize(widths={"0:out": 8})
    assert again.partition("0:out").selected == (1, 3, 4)
    with torch.no_grad():
        torch.testing.assert_close(again(x), imodel(x))


def test_selection_exports_the_original_channels():
    """Against the original network with the hidden channels sliced by hand (BatchNorm folded
    and kept, no permutation so that node i is channel i)."""
    model, x = _net(), torch.randn(5, 3, 8, 8)
    keep = [0, 2, 3, 6]
    by_hand = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, bias=False), *list(model)[4:],
    ).eval()  # fmt: skip
    with torch.no_grad():
        by_hand[0].weight.copy_(model[0].weight[keep])
        by_hand[0].bias.copy_(model[0].bias[keep])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(by_hand[1], name).copy_(getattr(model[1], name)[keep])
        by_hand[3].weight.copy_(model[3].weight[:, keep])
        expected = by_hand(x)
    for fold in (True, False):
        imodel = inn.convert(model, x[:1], permute=False, fold_batchnorm=fold)
        imodel.partition("0:out").select(keep)
        with torch.no_grad():
            torch.testing.assert_close(imodel(x), expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(imodel.export()(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rule", ["trapezoid", "simpson"])
def test_channel_scores_are_the_l1_norms_of_the_weights_that_make_and_read_each_channel(rule):
    model, x = _net(), torch.randn(1, 3, 8, 8)
    imodel = inn.convert(model, x, permute=False, fold_batchnorm=False, rule=rule)
    scores = channel_scores(imodel)
    # by hand: each convolution's kernels plus the columns of the layer that reads the channels;
    # not the BatchNorm vectors, and the quadrature factors of the reading layer multiplied back
    weights = [model[i].weight.detach().double().abs() for i in (0, 3, 8)]
    expected = {
        "0:out": weights[0].sum((1, 2, 3)) + weights[1].sum((0, 2, 3)),
        "3:out": weights[1].sum((1, 2, 3)) + weights[2].sum(0),
    }
    assert set(scores) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(scores[name], value)
    imodel.resize(widths={"0:out": 3})
    assert select_channels(imodel) == ["0:out"]
    top = torch.topk(expected["0:out"], 3).indices.sort().values
    assert imodel.partition("0:out").selected == tuple(top.tolist())


def test_channel_scores_of_groups_tied_across_the_blocks_of_a_grouped_convolution():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 3, groups=2), nn.ReLU(), nn.Conv2d(6, 5, 1)
    ).eval()  # fmt: skip
    imodel = inn.convert(model, torch.randn(1, 3, 9, 9), permute=False)
    scores = channel_scores(imodel)
    w0, w2, w4 = (model[i].weight.detach().double().abs() for i in (0, 2, 4))
    # a lattice node of "0:out" is channel j of both blocks (j and 4 + j); block b of the
    # grouped convolution reads channel 4b + j through its input column j, outputs 3b..3b+2
    made = w0.sum((1, 2, 3))
    read = torch.stack([w2[3 * (c // 4) : 3 * (c // 4) + 3, c % 4].sum() for c in range(8)])
    torch.testing.assert_close(scores["0:out"], (made + read).reshape(2, 4).sum(0))
    made, read = w2.sum((1, 2, 3)), w4.sum((0, 2, 3))
    torch.testing.assert_close(scores["2:out"], (made + read).reshape(2, 3).sum(0))


def test_measured_statistics_are_dropped_when_the_selection_changes():
    model, x = _net(), torch.randn(32, 3, 8, 8)
    imodel = inn.convert(model, x[:1], fold_batchnorm=False)
    imodel.resize(widths={"0:out": 4})
    inn.reestimate_batchnorm(imodel, [x])
    with torch.no_grad():
        measured = imodel(x)
        imodel.partition("0:out").select([0, 1, 2, 3])  # same width, other channels
        selected = imodel(x)
        inn.reestimate_batchnorm(imodel, [x])
        assert not torch.allclose(selected, measured)
        assert not torch.allclose(imodel(x), selected)  # the sampled statistics were in use


def _relative_error(imodel, model, x) -> float:
    inn.reestimate_batchnorm(imodel, [x])
    with torch.no_grad():
        return float((imodel(x) - model(x)).square().sum() / model(x).square().sum())


def test_choice_is_never_worse_than_either_alternative():
    """Every combination measured by brute force; the choice is at most the better uniform one,
    and the model is left at it, with its statistics measured there."""
    model, x = _net(), torch.randn(48, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    imodel = inn.convert(model, x[:1], fold_batchnorm=False)
    widths = {"0:out": 3, "3:out": 2}
    errors = {}
    for kinds in itertools.product(("resample", "select"), repeat=2):
        imodel.resize(widths=widths)
        select_channels(imodel, [n for n, k in zip(widths, kinds, strict=True) if k == "select"])
        errors[kinds] = _relative_error(imodel, model, x)
    imodel.resize(widths=widths)
    choice = choose_sampling(imodel, model, [x])
    assert set(choice) == set(widths)
    chosen = errors[tuple(choice[n] for n in widths)]
    assert chosen <= min(errors[("resample",) * 2], errors[("select",) * 2])
    with torch.no_grad():
        torch.testing.assert_close(
            float((imodel(x) - model(x)).square().sum() / model(x).square().sum()), chosen
        )


def test_prune_sampling_options():
    model, x = _net(), torch.randn(24, 3, 8, 8)
    with pytest.raises(inn.InnError, match="sampling must be one of"):
        inn.prune(model, x[:1], widths={"0:out": 4}, calib=[x], sampling="nearest")
    small = inn.prune(model, x[:1], widths={"0:out": 4}, sampling="select")  # no data: L1
    assert small(x).shape == (24, 4)
    small = inn.prune(model, x[:1], widths={"0:out": 4}, calib=[x], calibrate=False)
    assert small(x).shape == (24, 4)


def test_pruned_with_auto_sampling_fits_the_held_out_images_best():
    """After calibration the export kept is the one with the lowest held-out calibration loss
    among the chosen mix, all-resampled and all-selected (each measured here on its own)."""
    model = _net()
    calib = [torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in (3, 4)]
    options = {"widths": {"0:out": 3, "3:out": 3}, "calib": calib}
    fit = {"steps": 20}
    pruned = {
        s: inn.prune(model, calib[0][:1], sampling=s, calibrate_options=fit, **options)
        for s in ("auto", "resample", "select")
    }
    (_, _), (held, references) = split_holdout(
        [(x, None) for x in calib], [model(x).detach() for x in calib], BIAS_CALIBRATION.holdout
    )
    loss = {s: mean_loss(m.eval(), held, references, "kl") for s, m in pruned.items()}
    assert loss["auto"] <= min(loss["resample"], loss["select"]) * (1 + 1e-4)
