"""Pipeline A end to end at toy size, and the slimmable baseline against an independent pruning."""

import json

import pytest
import torch
from torch.utils.data import TensorDataset

import inn
from innlab.experiments import pipeline_a
from innlab.experiments.pipeline_a import _narrow_plain
from innlab.experiments.slimmable import SlimmableNetwork


def test_slimmable_network_at_a_width_is_the_network_with_its_first_channels(trained_digits_cnn):
    """The sliced forward pass equals the exported (pruned by select_channels) copy, and the
    full width equals the original network."""
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    slim = SlimmableNetwork(trained_digits_cnn, x[:1]).eval()
    with torch.no_grad():
        assert torch.allclose(slim(x), trained_digits_cnn(x), atol=1e-6)
        for fraction in (0.25, 0.5, 0.8):
            slim.resize(widths={g.name: max(1, round(fraction * g.full_size))
                                for g in slim.resizable_groups})  # fmt: skip
            small = slim.export().eval()
            assert sum(p.numel() for p in small.parameters()) < sum(
                p.numel() for p in trained_digits_cnn.parameters()
            )
            assert torch.allclose(slim(x), small(x), atol=1e-5)
    # first channels: the first conv of the export is the original's first rows
    conv = small.get_submodule("conv1")
    assert torch.equal(conv.weight, trained_digits_cnn.conv1.weight[: conv.out_channels])


def test_slimmable_depthwise_network_at_a_width_is_its_first_channels():
    """An inverted residual (expansion, depthwise, projection): the sliced forward pass equals
    the pruned export, whose depthwise convolution has one group per kept channel."""
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 12, 1), nn.BatchNorm2d(12), nn.ReLU6(),
        nn.Conv2d(12, 12, 3, padding=1, groups=12), nn.BatchNorm2d(12), nn.ReLU6(),
        nn.Conv2d(12, 4, 1), nn.Flatten(), nn.Linear(4 * 25, 3),
    ).eval()  # fmt: skip
    x = torch.randn(4, 3, 5, 5)
    slim = SlimmableNetwork(model, x[:1]).eval()
    slim.resize(widths={g.name: g.full_size // 3 for g in slim.resizable_groups})
    small = slim.export().eval()
    depthwise = small.get_submodule("3")
    assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == 4
    with torch.no_grad():
        assert torch.allclose(slim(x), small(x), atol=1e-5)
        assert model[3].groups == 12  # restored after the sliced pass


def test_slimmable_network_refuses_other_grouped_convolutions():
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=2), torch.nn.Flatten()).eval()
    with pytest.raises(inn.InnError, match="groups=2"):
        SlimmableNetwork(model, torch.zeros(1, 4, 5, 5))


def test_pipeline_a_runs_every_method_and_writes_its_outputs(digits, tmp_path):
    x, y, xt, yt = digits

    class Small(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.conv2, self.bn2 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, v):
            h = torch.relu(self.bn1(self.conv1(v)))
            h = torch.relu(self.bn2(self.conv2(h)))
            return self.fc(h.mean((2, 3)))

    rows = pipeline_a.run(
        Small, TensorDataset(x[:128], y[:128]), [(xt[:100], yt[:100])], [(x[:64], y[:64])],
        epochs=1, seeds=(0,), fractions=(0.5, 1.0), tune_steps=2, progress=False,
    )  # fmt: skip
    table = pipeline_a.summarise(rows)
    assert set(table) == set(pipeline_a.METHODS)
    assert set(table["discrete"]) == {1.0}
    assert all(set(cells) == {0.5, 1.0} for m, cells in table.items() if m != "discrete")
    # the full width of the networks trained alone is the discrete network itself
    assert table["discrete-alone"][1.0] == table["discrete"][1.0]
    # l1 at full width is the discrete network itself
    assert table["l1+bn"][1.0][0] == pytest.approx(table["discrete"][1.0][0], abs=0.02)
    pipeline_a.save(rows, tmp_path, "title", "inn experiment pipeline-a", {"epochs": 1})
    payload = json.loads((tmp_path / "results.json").read_text())
    assert len(payload["rows"]) == len(rows) and payload["setup"]["epochs"] == 1
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000
    assert "| slimmable |" in (tmp_path / "results.md").read_text()


def test_a_narrow_plain_network_keeps_its_normalisations_and_initial_channels():
    """``discrete-alone`` trains the plain network at a fraction of its channels from a fresh
    start: its BatchNorms kept (a fresh network folded would not train) and its initial values
    a subset of the full network's channels, not resampled."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 10),
    ).eval()  # fmt: skip
    narrow = _narrow_plain(model, torch.randn(1, 1, 8, 8), 0.5)
    norms = [m for m in narrow.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [n.num_features for n in norms] == [4, 3]
    convs = [m for m in narrow.modules() if isinstance(m, torch.nn.Conv2d)]
    first = model[0].weight.detach().flatten(1)
    for row in convs[0].weight.detach().flatten(1):
        assert (first == row).all(1).any()  # exactly one of the full network's filters
