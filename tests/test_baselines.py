"""Discrete baselines keep exactly the channels their criterion ranks highest."""

import torch
from torch import nn

import inn
import innlab.baselines as baselines


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv2(torch.relu(self.conv1(x))).mean((2, 3)))


def tiny() -> Tiny:
    torch.manual_seed(0)
    return Tiny().eval()


def check_kept(model: Tiny, pruned: nn.Module, kept: torch.Tensor) -> None:
    assert torch.equal(pruned.conv1.weight, model.conv1.weight[kept])
    assert torch.equal(pruned.conv1.bias, model.conv1.bias[kept])
    assert torch.equal(pruned.conv2.weight, model.conv2.weight[:, kept])
    assert pruned.conv1.out_channels == pruned.conv2.in_channels == len(kept)


def test_l1_keeps_the_largest_kernels():
    model = tiny()
    pruned = baselines.prune_l1(model, torch.randn(1, 2, 5, 5), widths={"conv1:out": 3})
    kept = model.conv1.weight.detach().abs().sum((1, 2, 3)).topk(3).indices.sort().values
    check_kept(model, pruned, kept)
    x = torch.randn(2, 2, 5, 5)
    assert pruned(x).shape == (2, 3)


def test_activation_keeps_the_strongest_feature_maps():
    model = tiny()
    data = [torch.randn(8, 2, 5, 5, generator=torch.Generator().manual_seed(k)) for k in range(2)]
    for statistic in ("mean_abs", "variance"):
        pruned = baselines.prune_activation(
            model, data[0][:1], data, widths={"conv1:out": 2}, statistic=statistic
        )
        with torch.no_grad():
            maps = [model.conv1(x).transpose(0, 1).reshape(6, -1) for x in data]
        stats = [m.abs().mean(1) if statistic == "mean_abs" else m.var(1) for m in maps]
        kept = torch.stack(stats).mean(0).topk(2).indices.sort().values
        check_kept(model, pruned, kept)


def test_random_is_seeded_and_widths_follow_compression():
    model = tiny()
    x = torch.randn(1, 2, 5, 5)
    a = baselines.prune_random(model, x, 0.4, seed=1)
    b = baselines.prune_random(model, x, 0.4, seed=1)
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    widths = baselines.plan_widths(model, x, 0.4)
    assert a.conv1.out_channels == widths["conv1:out"] < 6
    assert all(not type(m).__module__.startswith("inn") for m in a.modules())


def test_calibrate_changes_only_biases():
    model = tiny()
    pruned = baselines.prune_l1(model, torch.randn(1, 2, 5, 5), widths={"conv1:out": 3})
    weights = {k: v.clone() for k, v in pruned.state_dict().items()}
    data = [torch.randn(16, 2, 5, 5, generator=torch.Generator().manual_seed(3))]
    report = inn.recover.calibrate_biases(pruned, model, data, steps=30)
    assert report.loss_after <= report.loss_before
    changed = {k for k, v in pruned.state_dict().items() if not torch.equal(v, weights[k])}
    assert changed and all(k.endswith("bias") for k in changed)
    assert all(p.requires_grad for p in pruned.parameters())  # flags restored
