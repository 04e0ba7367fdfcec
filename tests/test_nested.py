"""Nested selected channels (slimmable-style widths of an integral model): the partition rule,
the export against networks sliced by hand, width buckets per selected channel against hand
computations and measured statistics, and random-width training with ``channels="select"``."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import inn
from inn.continuous import Partition
from inn.layers import IntegralBatchNorm2d
from inn.layers.width_statistics import BUCKETS
from inn.train import train
from tests.conftest import two_conv_net


def test_a_nested_partition_keeps_the_first_nodes_of_its_ranking():
    part = Partition(6)
    part.nest([4, 1, 5, 0, 2, 3])
    part.resize(3)
    assert part.selected == (1, 4, 5) and not part.is_uniform
    part.resize(1)
    assert part.selected == (4,)
    part.resize(6)  # the full width: every node, the plain uniform lattice
    assert part.is_uniform
    state = part.get_extra_state()
    again = Partition(6)
    again.set_extra_state(state)
    assert again.order == (4, 1, 5, 0, 2, 3)
    again.resize(2)
    assert again.selected == (1, 4)
    again.nest(None)
    assert again.is_uniform and again.size == 2
    for bad in ([0, 1, 2], [0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 6]):
        with pytest.raises(inn.InnError, match="every node index"):
            part.nest(bad)


_net = two_conv_net


def _strongest(made: torch.Tensor, read: torch.Tensor, n: int) -> list[int]:
    """The ``n`` channels of the largest L1 norm of their producing kernel plus their reading
    column, by hand."""
    made, read = made.detach().abs(), read.detach().abs()
    score = [float(made[c].sum() + read[:, c].sum()) for c in range(made.shape[0])]
    return sorted(sorted(range(len(score)), key=lambda c: -score[c])[:n])


def _sliced(model: nn.Module, first: list[int], second: list[int]) -> nn.Module:
    """``model`` with the channels ``first`` of its first conv and ``second`` of its second."""
    small = nn.Sequential(
        nn.Conv2d(3, len(first), 3, padding=1), nn.BatchNorm2d(len(first)), nn.ReLU(),
        nn.Conv2d(len(first), len(second), 3, padding=1, bias=False), nn.BatchNorm2d(len(second)),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(len(second), 4),
    ).eval()  # fmt: skip
    with torch.no_grad():
        small[0].weight.copy_(model[0].weight[first])
        small[0].bias.copy_(model[0].bias[first])
        small[3].weight.copy_(model[3].weight[second][:, first])
        small[8].weight.copy_(model[8].weight[:, second])
        small[8].bias.copy_(model[8].bias)
        for index, kept in ((1, first), (4, second)):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(small[index], name).copy_(getattr(model[index], name)[kept])
    return small


def test_nested_channels_are_the_strongest_sliced_by_hand_at_every_width():
    model, x = _net(), torch.randn(5, 3, 8, 8)
    imodel = inn.convert(model, x[:1], permute=False, fold_batchnorm=False)
    assert sorted(imodel.nest_channels()) == sorted(g.name for g in imodel.resizable_groups)
    (a, b) = (g.name for g in imodel.resizable_groups)
    kept = {}
    for n, m in ((6, 5), (4, 3), (2, 1)):
        first = _strongest(model[0].weight, model[3].weight, n)
        second = _strongest(model[3].weight, model[8].weight, m)
        imodel.resize(widths={a: n, b: m})
        assert imodel.partition(a).selected == tuple(first)
        with torch.no_grad():  # statistics: the full width's, sampled at the kept channels
            expected = _sliced(model, first, second)(x)
            torch.testing.assert_close(imodel(x), expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(imodel.export()(x), expected, atol=1e-5, rtol=1e-5)
        kept[n] = set(first)
    assert kept[2] <= kept[4] <= kept[6]  # nested
    # the ranking is saved with the model
    again = inn.convert(model, x[:1], permute=False, fold_batchnorm=False)
    again.load_state_dict(imodel.state_dict())
    again.resize(widths={a: 4, b: 3})
    assert again.partition(a).selected == tuple(_strongest(model[0].weight, model[3].weight, 4))
    # and undone
    imodel.nest_channels(nested=False)
    imodel.resize(widths={a: 4})
    assert imodel.partition(a).is_uniform
    with pytest.raises(inn.InnError, match="not resizable groups"):
        imodel.nest_channels({"nope": torch.ones(3)})
    with pytest.raises(inn.InnError, match="has 8 channels"):
        imodel.nest_channels({a: torch.ones(3)})


def _norm(order: list[int]) -> IntegralBatchNorm2d:
    bn = nn.BatchNorm2d(len(order))
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(7.0)
    layer = IntegralBatchNorm2d(bn)
    layer.track_statistics = True
    layer.segment_partitions("out")[0].nest(order)
    return layer


def _at(layer: IntegralBatchNorm2d, width: int) -> IntegralBatchNorm2d:
    layer.segment_partitions("out")[0].resize(width)
    return layer


def test_width_buckets_of_selected_channels_by_hand():
    """80 channels ranked ``order``; constant batches, so each channel's batch mean is its
    value and its variance 0. Channel values not smooth along the lattice: nothing may be
    interpolated between nodes."""
    assert BUCKETS == 40  # bucket k: 2 (k + 1) of the 80 channels
    order = torch.randperm(80, generator=torch.Generator().manual_seed(1)).tolist()
    layer = _norm(order)
    values = torch.randn(80, generator=torch.Generator().manual_seed(0))

    def record(width: int, shift: float) -> None:  # the kept channels, in lattice order
        kept = sorted(order[:width])
        x = (values[kept] + shift).view(1, -1, 1, 1).expand(8, width, 2, 2)
        _at(layer, width).train()(x)

    record(40, 0.0)  # 40 of 80: bucket 20/40 exactly
    record(38, 1.0)  # 38 of 80: bucket 19/40 exactly
    t = _at(layer, 40).eval().statistics()
    torch.testing.assert_close(t["running_mean"], values[sorted(order[:40])])
    torch.testing.assert_close(t["running_var"], torch.zeros(40))
    # 39 of 80: half way between the two buckets; the channels kept at 38 blend both, the 39th
    # (kept from 39 on) only the wider bucket recorded it
    kept = sorted(order[:39])
    expected = torch.stack([values[c] + (0.5 if c in order[:38] else 0.0) for c in kept])
    torch.testing.assert_close(_at(layer, 39).eval().statistics()["running_mean"], expected)
    # 60 of 80 (bucket 30/40) never recorded: the full width's statistics
    t = _at(layer, 60).eval().statistics()
    torch.testing.assert_close(t["running_mean"], torch.full((60,), 5.0))
    torch.testing.assert_close(t["running_var"], torch.full((60,), 7.0))


def test_selected_channel_buckets_saved_with_eight_buckets_load_as_the_blends_they_gave():
    """Per-node statistics saved when there were 8 buckets (12.5 % apart), by hand: 40
    channels, old bucket ``k`` (5 (k + 1) channels) recorded the nodes ``order[:5 (k + 1)]``
    with relative mean ``k + 1``; old bucket 5 never. 35 % of 40 (14 channels) is 1.8 old
    buckets above the first: the 10 strongest blend 0.2 x 2 + 0.8 x 3 = 2.8, the next 4 were
    kept from old bucket 2 on and take its 3."""
    order = torch.randperm(40, generator=torch.Generator().manual_seed(2)).tolist()
    layer = _norm(order)
    state = layer.state_dict()
    old = torch.zeros(3, 7, 40)
    for k in (0, 1, 2, 3, 4, 6):
        nodes = order[: 5 * (k + 1)]
        old[0, k, nodes], old[1, k, nodes], old[2, k, nodes] = k + 1.0, 1.0, 1.0
    state["node_statistics"] = old
    layer.load_state_dict(state)
    assert layer.node_statistics.shape == (3, BUCKETS - 1, 40)

    def mean_at(width: int) -> dict[int, float]:
        got = _at(layer, width).eval().statistics()["running_mean"]
        return dict(zip(sorted(order[:width]), got.tolist(), strict=True))

    expected = {c: 5 + (2.8 if c in order[:10] else 3.0) for c in order[:14]}
    assert mean_at(14) == pytest.approx(expected)
    assert mean_at(20) == pytest.approx({c: 5 + 4.0 for c in order[:20]})  # old bucket 3 exactly
    # 70 % (28 channels) blends old buckets 4 and 5: 5 was never recorded, so the 25 kept from
    # old bucket 4 on take its 5, the other 3 the full width's
    expected = {c: 5 + (5.0 if c in order[:25] else 0.0) for c in order[:28]}
    assert mean_at(28) == pytest.approx(expected)


def test_training_with_selected_channels_ranks_them_once_when_it_starts():
    imodel = inn.convert(_net(), torch.zeros(1, 3, 6, 6), permute=False, fold_batchnorm=False)
    scores = inn.budget.channel_scores(imodel)
    data = TensorDataset(torch.randn(16, 3, 6, 6), torch.arange(16) % 4)
    options = dict(batch_size=8, widths=(0.25, 1.0), lr=0.5, progress=False)
    train(imodel, data, steps=3, channels="select", **options)
    for g in imodel.resizable_groups:  # the ranking of the weights training started from
        ranking = tuple(torch.argsort(scores[g.name], descending=True, stable=True).tolist())
        assert imodel.partition(g.name).order == ranking
    norms = [m for m in imodel.modules() if isinstance(m, IntegralBatchNorm2d)]
    assert all(m.node_statistics[2].sum() > 0 and m.width_counts.sum() == 0 for m in norms)
    train(imodel, data, steps=1, channels="resample", **options)
    assert all(imodel.partition(g.name).order is None for g in imodel.resizable_groups)
    with pytest.raises(inn.InnError, match="channels must be one of"):
        train(imodel, data, steps=1, channels="first", **options)


def test_sampling_at_lattice_nodes_gathers_them_with_the_gradients_of_the_taps():
    """Selected channels are sampled by one gather: the values and the gradients are those of
    the four-tap interpolation at the same points, bitwise."""
    from inn.continuous import ContinuousTensor
    from inn.numerics import interpolate, uniform

    values = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    tensor = ContinuousTensor(values.clone(), {0: (6,)}, closed=False, trainable=True)
    points = uniform(6, closed=False)[[0, 2, 5]]
    got = tensor.sample({0: [points]})
    (got * torch.arange(9.0).view(3, 3)).sum().backward()
    reference = values.clone().requires_grad_(True)
    expected = interpolate(reference, points, 0, closed=False)
    (expected * torch.arange(9.0).view(3, 3)).sum().backward()
    assert torch.equal(got, expected) and torch.equal(got, values[[0, 2, 5]])
    assert torch.equal(tensor.values.grad, reference.grad)
    # the gather is taken only where every point is a node and carries no gradient
    from inn.continuous.tensor import _node_indices

    assert _node_indices(points, 6, False).tolist() == [0, 2, 5]
    assert _node_indices(points + 1e-3, 6, False) is None
    assert _node_indices(points.clone().requires_grad_(True), 6, False) is None


class _Concat(nn.Module):
    """Two producers concatenated into one consumer: its input axis has two segments."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 5, 3, padding=1)
        self.c = nn.Conv2d(9, 6, 3, padding=1)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c(torch.relu(torch.cat([self.a(x), self.b(x)], 1)))
        return self.head(y.mean((2, 3)))


@pytest.mark.parametrize("make", [_net, _Concat])
def test_selected_channels_are_gathered_as_the_interpolant_gives_them(make):
    """The layers' gather of selected channels against the general sampling (the interpolant at
    the same points), values and gradients bitwise, with one group left at full width."""
    torch.manual_seed(0)
    model = make().eval()
    imodel = inn.convert(model, torch.randn(1, 3, 6, 6), permute=False, fold_batchnorm=False)
    imodel.nest_channels()
    groups = imodel.resizable_groups
    imodel.resize(widths={g.name: g.full_size if i == 0 else 2 for i, g in enumerate(groups)})
    layers = [m for m in imodel.modules() if isinstance(m, inn.layers.IntegralLayer)]
    assert any(not p.is_uniform for m in layers for parts in m.partitions.values() for p in parts)
    for layer in layers:
        gathered = layer._sample()
        general = {name: layer._sample_tensor(name) for name in layer._layouts}
        assert gathered.keys() == general.keys()
        for name, want in general.items():
            if want is None:
                assert gathered[name] is None
                continue
            assert torch.equal(gathered[name], want), (type(layer).__name__, name)
            if want.requires_grad:
                values = getattr(layer, f"{name}_function").values
                weights = torch.randn_like(want)
                (got_grad,) = torch.autograd.grad((gathered[name] * weights).sum(), values)
                (want_grad,) = torch.autograd.grad((want * weights).sum(), values)
                assert torch.equal(got_grad, want_grad)


def test_selected_widths_train_after_an_evaluation_under_inference_mode():
    """What the gather memoises under ``torch.inference_mode`` also serves autograd later."""
    imodel = inn.convert(_net(), torch.randn(1, 3, 6, 6), fold_batchnorm=False)
    imodel.nest_channels()
    imodel.resize(compression=0.5)
    with torch.inference_mode():
        imodel.eval()(torch.randn(2, 3, 6, 6))
    imodel.train()
    imodel(torch.randn(4, 3, 6, 6)).sum().backward()
    assert all(p.grad is not None for p in imodel.parameters() if p.requires_grad)
