"""Running statistics per width bucket: recorded by random-width training at narrow widths,
used at a narrow width without data; against hand computations."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import inn
from inn.layers import IntegralBatchNorm2d
from inn.layers.width_statistics import BUCKETS, bucket_sizes, neighbours
from inn.train import train


@pytest.mark.parametrize(
    "fraction, expected",
    [(0.1, [(0, 1.0)]), (0.125, [(0, 1.0)]), (0.5, [(3, 1.0)]), (0.5625, [(3, 0.5), (4, 0.5)]),
     (0.95, [(6, 0.4), (7, 0.6)]), (1.0, [(7, 1.0)])],
)  # fmt: skip
def test_neighbouring_buckets_and_their_weights(fraction, expected):
    got = neighbours(fraction, 8)
    assert [k for k, _ in got] == [k for k, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected])


def _norm(channels: int = 16) -> IntegralBatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(7.0)
    layer = IntegralBatchNorm2d(bn)
    layer.track_statistics = True
    return layer


def _batch(width: int, mean: torch.Tensor, std: float) -> torch.Tensor:
    """Channels ``mean`` plus one noise shared by every channel: the batch means stay linear in
    the channel where ``mean`` is, the variances equal."""
    noise = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(width))
    return mean.view(1, -1, 1, 1) + std * noise.expand(64, width, 4, 4)


def _record(layer: IntegralBatchNorm2d, width: int, mean: torch.Tensor, std: float = 2.0) -> None:
    layer.segment_partitions("out")[0].resize(width)
    layer.train()(_batch(width, mean, std))


def _statistics_at(layer: IntegralBatchNorm2d, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    layer.segment_partitions("out")[0].resize(width)
    t = layer.eval().statistics()
    return t["running_mean"], t["running_var"]


def test_a_recorded_width_gets_its_batch_statistics_back():
    """Means linear in the channel position are rebuilt exactly (cubic interpolation keeps
    linear functions); the variance is the batch's unbiased one."""
    layer = _norm()
    mean = torch.linspace(-1.0, 2.0, 8)
    _record(layer, 8, mean)  # 8 of 16 channels: the bucket of 20/40 exactly
    x = _batch(8, mean, 2.0)
    got_mean, got_var = _statistics_at(layer, 8)
    torch.testing.assert_close(got_mean, x.mean((0, 2, 3)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_var, x.var((0, 2, 3)), atol=1e-5, rtol=1e-5)
    # the full width keeps its own running statistics
    full_mean, _ = _statistics_at(layer, 16)
    torch.testing.assert_close(full_mean, torch.full((16,), 5.0))


def test_a_width_between_buckets_blends_them_and_an_unrecorded_one_samples_the_full_width():
    assert BUCKETS == 40  # the widths below are buckets of 80 channels
    layer = _norm(80)
    _record(layer, 50, torch.full((50,), 1.0), std=0.0)  # bucket 25/40
    _record(layer, 52, torch.full((52,), 3.0), std=0.0)  # bucket 26/40
    mean, var = _statistics_at(layer, 51)  # 51/80: half way
    torch.testing.assert_close(mean, torch.full((51,), 2.0))
    torch.testing.assert_close(var, torch.zeros(51), atol=1e-6, rtol=0)
    # a later pass moves its bucket by the momentum (1 -> 1 + 0.1 * (5 - 1) = 1.4), and the
    # blend follows: (1.4 + 3) / 2
    _record(layer, 50, torch.full((50,), 5.0), std=0.0)
    torch.testing.assert_close(_statistics_at(layer, 51)[0], torch.full((51,), 2.2))
    # 60 of 80 (bucket 30/40) was never recorded: the sampled full-width statistics
    mean, var = _statistics_at(layer, 60)
    torch.testing.assert_close(mean, torch.full((60,), 5.0))
    torch.testing.assert_close(var, torch.full((60,), 7.0))
    # measured statistics, where current, come first
    layer.segment_partitions("out")[0].resize(11)
    layer.set_statistics(torch.zeros(11), torch.ones(11))
    assert _statistics_at(layer, 11)[0].abs().max() == 0


def test_state_dicts_saved_with_eight_buckets_load_as_the_blends_they_gave():
    """Statistics saved when there were 8 buckets (12.5 % apart): every width gets what it got
    then. By hand: 40 channels, old bucket ``k`` (fraction (k + 1) / 8, 5 (k + 1) channels)
    holds the relative mean ``k + 1`` on every channel; 35 % of 40 is 1.8 old buckets above the
    first: 0.2 x 2 + 0.8 x 3 = 2.8; old bucket 5 (6/8) was never recorded."""
    layer = _norm(40)
    state = layer.state_dict()
    old = torch.zeros(2, 7, 40)
    for k in range(7):
        old[0, k, : 5 * (k + 1)] = k + 1
        old[1, k, : 5 * (k + 1)] = 1.0
    state["width_statistics"], state["width_counts"] = old, torch.tensor([1.0] * 5 + [0.0, 1.0])
    layer.load_state_dict(state)
    for width, relative in ((20, 4.0), (14, 2.8), (10, 2.0)):
        torch.testing.assert_close(_statistics_at(layer, width)[0], torch.full((width,), 5 + relative))
    # 70 % blends old buckets 5 and 6: 5 was never recorded, so the full width's statistics
    torch.testing.assert_close(_statistics_at(layer, 28)[0], torch.full((28,), 5.0))


def test_state_dicts_saved_before_width_buckets_still_load():
    layer = _norm()
    state = {k: v for k, v in layer.state_dict().items() if not k.startswith("width_")}
    fresh = _norm()
    fresh.load_state_dict(state)  # strict
    assert fresh.width_counts.sum() == 0


def test_random_width_training_records_the_narrow_widths():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    ).eval()  # fmt: skip
    imodel = inn.convert(model, torch.zeros(1, 1, 6, 6), permute=False, fold_batchnorm=False)
    data = TensorDataset(torch.randn(16, 1, 6, 6), torch.arange(16) % 3)
    train(imodel, data, steps=2, batch_size=8, widths=(0.25, 1.0), progress=False,
          statistics_batches=0, channels="resample")  # fmt: skip
    (norm,) = [m for m in imodel.modules() if isinstance(m, IntegralBatchNorm2d)]
    around = [k for k, _ in neighbours(2 / 8)]  # the sandwich's narrowest width, 2 of 8 channels
    assert all(norm.width_counts[k] > 0 for k in around)
    assert norm.width_counts.sum() == norm.width_counts[around].sum()  # no other width recorded
    # at the end, every bucket is measured on training batches
    train(imodel, data, steps=1, batch_size=8, widths=(0.25, 1.0), progress=False,
          channels="resample")  # fmt: skip
    # (but those whose fraction of 8 channels rounds to the full width)
    full = torch.tensor([bucket_sizes([8], k)[0] == 8 for k in range(BUCKETS - 1)])
    assert torch.equal(norm.width_counts == 0, full)


def _two_norms(second: int) -> inn.IntegralModel:
    """conv (16) - BatchNorm - conv (``second``) - BatchNorm - classifier, converted with its
    BatchNorms kept (seeded)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, second, 1),
        nn.BatchNorm2d(second), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(second, 3),
    ).eval()  # fmt: skip
    return inn.convert(model, torch.zeros(1, 3, 6, 6), fold_batchnorm=False)


@pytest.mark.parametrize("nested", [False, True])
def test_measured_buckets_give_each_bucket_width_its_measured_statistics(nested):
    """``reestimate_width_statistics`` against ``reestimate_batchnorm`` at the buckets' widths,
    for statistics that are not smooth across channels: none of it is lost to interpolation.
    Also where the narrow widths keep selected channels (``nest_channels``: kept per node)."""
    imodel = _two_norms(8)
    if nested:
        imodel.nest_channels()
    inputs = [3 * torch.randn(8, 3, 6, 6) + 1 for _ in range(3)]
    assert inn.recover.reestimate_width_statistics(imodel, inputs) == 2
    norms = [m for m in imodel.modules() if isinstance(m, IntegralBatchNorm2d)]
    for fraction in (0.25, 0.5, 0.75):
        imodel.resize(
            widths={g.name: round(fraction * g.full_size) for g in imodel.resizable_groups}
        )
        assert all(
            (imodel.partition(g.name).selected is not None) == nested
            for g in imodel.resizable_groups
        )
        no_data = [m.eval().statistics() for m in norms]
        inn.reestimate_batchnorm(imodel, inputs)
        for got, norm in zip(no_data, norms, strict=True):
            expected = norm.statistics()
            for name in ("running_mean", "running_var"):
                torch.testing.assert_close(got[name], expected[name], atol=1e-5, rtol=1e-5)
    # every bucket measured, but where a bucket's width rounds to the full width (8 channels)
    counts = [m.node_statistics[2].amax(1) if nested else m.width_counts for m in norms]
    for count, channels in zip(counts, (16, 8), strict=True):
        full = torch.tensor([bucket_sizes([channels], k)[0] == channels for k in range(BUCKETS - 1)])
        assert torch.equal(count.eq(0), full) and count[~full].eq(1).all()


def test_only_passes_with_every_group_at_one_fraction_record_statistics():
    from inn.convert import Group
    from inn.train import WidthSampler

    groups = [Group("a", 8, 8, True), Group("b", 16, 16, True)]
    sandwich = WidthSampler.for_groups(groups, (0.25, 1.0), num_random=2)
    assert sandwich.uniform(0) == [True, True, False, False]
    assert len(sandwich.draw(0)) == 4
    same = WidthSampler.for_groups(groups, (0.25, 1.0), same_fraction=True, num_random=1)
    assert same.uniform(3) == [True, True, True]
    fixed = WidthSampler.for_groups(groups, (0.25, 1.0), sampling="fixed")
    assert fixed.uniform(0) == [True] * len(fixed.draw(0))
    # a pass that is not uniform leaves the buckets as they are
    layer = _norm()
    layer.record_widths = False
    _record(layer, 8, torch.zeros(8))
    assert layer.width_counts.sum() == 0


def test_a_model_with_width_statistics_is_planned_at_one_fraction_without_data():
    """Its statistics describe every group at one fraction: with no data, ``"auto"`` keeps all
    groups at one fraction's channel counts instead of mixing fractions; with data, or
    before any width was recorded, it ranks the groups by their outputs as before."""
    imodel = _two_norms(24)
    inputs = [torch.randn(8, 3, 6, 6) for _ in range(2)]
    assert imodel.plan({"params": 0.5}).sensitivity == "outputs"
    inn.recover.reestimate_width_statistics(imodel, inputs)
    plan = imodel.plan({"params": 0.5})
    assert plan.sensitivity == "uniform" and plan.predicted <= plan.target
    # brute force: the widest uniform width (training's channel counts) within the budget
    best = None
    for fraction in torch.linspace(0, 1, 1001).tolist():
        with imodel.widths_kept():
            widths = inn.train.uniform_widths(imodel, fraction)
            if imodel.resize(widths=widths).cost("params") <= plan.target:
                best = widths
    assert plan.widths == best
    rounded = imodel.plan({"params": 0.5}, round_to=4)  # a device's multiples, still in budget
    assert all(w % 4 == 0 for w in rounded.widths.values())
    assert rounded.predicted <= rounded.target
    assert imodel.plan({"params": 0.5}, data=inputs).sensitivity == "outputs"
