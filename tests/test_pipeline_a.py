"""Pipeline A end to end at toy size, and the slimmable baseline against an independent pruning."""

import json

import pytest
import torch
from torch.utils.data import TensorDataset

import inn
from innlab.experiments import pipeline_a
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


def test_slimmable_network_refuses_grouped_convolutions():
    model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=4), torch.nn.Flatten()).eval()
    with pytest.raises(inn.InnError, match="groups=4"):
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
        Small, TensorDataset(x[:256], y[:256]), [(xt[:100], yt[:100])], [(x[:64], y[:64])],
        epochs=1, seeds=(0,), fractions=(0.5, 1.0), tune_steps=2, progress=False,
    )  # fmt: skip
    table = pipeline_a.summarise(rows)
    assert set(table) == set(pipeline_a.METHODS)
    assert set(table["discrete"]) == {1.0}
    assert all(set(cells) == {0.5, 1.0} for m, cells in table.items() if m != "discrete")
    # l1 at full width is the discrete network itself
    assert table["l1+bn"][1.0][0] == pytest.approx(table["discrete"][1.0][0], abs=0.02)
    pipeline_a.save(rows, tmp_path, "title", "inn experiment pipeline-a", {"epochs": 1})
    payload = json.loads((tmp_path / "results.json").read_text())
    assert len(payload["rows"]) == len(rows) and payload["setup"]["epochs"] == 1
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000
    assert "| slimmable |" in (tmp_path / "results.md").read_text()
