"""`inn prune` on a torchvision architecture with a state_dict file, and the cost counters."""

import torch
import torchvision
from conftest import randomise_batchnorm
from torch import nn

from inn.budget import count_macs, count_parameters
from inn.cli import main


def test_count_macs_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 5 * 5, 2))
    # conv: 4 x 5 x 5 outputs, each 3 x 3 x 3 MACs; linear: 2 outputs x 100 inputs
    assert count_macs(model, torch.randn(1, 3, 5, 5)) == 4 * 25 * 27 + 2 * 100
    grouped = nn.Conv2d(4, 6, 1, groups=2)
    assert count_macs(grouped, torch.randn(1, 4, 3, 3)) == 6 * 9 * 2


def test_prune_cli_writes_a_smaller_plain_model(tmp_path, capsys):
    torch.manual_seed(0)
    model = randomise_batchnorm(torchvision.models.resnet18(num_classes=10))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "small.pt"
    code = main(
        [
            "prune",
            "resnet18",
            "--weights",
            str(tmp_path / "w.pt"),
            "--num-classes",
            "10",
            "--compression",
            "0.4",
            "--input-shape",
            "1,3,32,32",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "layer1.0.conv1:out" in text and "parameters:" in text and "MACs" in text
    small = torch.load(out, weights_only=False)
    kept = count_parameters(small) / count_parameters(model)
    assert abs(kept - 0.6) < 0.01
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_prune_cli_reports_library_errors_cleanly(tmp_path, capsys):
    code = main(
        [
            "prune",
            "tests.cli_models:tiny",
            "--widths",
            '{"nope:out": 3}',
            "--input-shape",
            "1,3,16,16",
            "-o",
            str(tmp_path / "x.pt"),
        ]
    )
    assert code == 1  # found by the library while working: a runtime error
    assert "no channel group named 'nope:out'" in capsys.readouterr().err


def test_prune_cli_meets_a_mac_budget_rounded_for_the_device(tmp_path, capsys):
    """Half precision on CUDA: every width a multiple of 8 without --round-to (the plan runs
    here; only a latency budget would need the device)."""
    out = tmp_path / "small.pt"
    x = torch.randn(1, 3, 16, 16)
    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    args = ["prune", "mobilenet_v2", "--num-classes", "10", "--budget", "macs:0.5"]
    device = ["--device", "cuda", "--dtype", "float16"]
    code = main([*args, *device, "--input-shape", "1,3,16,16", "-o", str(out)])
    assert code == 0
    small = torch.load(out, weights_only=False)
    full = count_macs(model, x)
    assert 0.49 * full <= count_macs(small, x) <= 0.5 * full
    for m in small.modules():
        if isinstance(m, nn.Conv2d) and m.groups == 1 and m.out_channels != 10:
            assert m.out_channels % 8 == 0 or m.out_channels in (1280,), m
    # a budget under the floor: tests/test_cli_errors.py (on a tiny model)


def test_version_through_the_entry_point():
    import subprocess
    import sys

    import inn

    done = subprocess.run(
        [sys.executable, "-m", "inn.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"inn {inn.__version__}"


def test_prune_cli_selects_original_channels_on_request(tmp_path):
    from tests.cli_models import gray_net

    torch.manual_seed(0)
    model = gray_net().eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "small.pt"
    code = main(["prune", "tests.cli_models:gray_net", "--weights", str(tmp_path / "w.pt"),
                 "--widths", '{"0:out": 3}', "--sampling", "select", "--input-shape", "1,1,8,8",
                 "-o", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    rows = torch.load(out, weights_only=False).get_submodule("0").weight.flatten(1)
    original = model[0].weight.detach().flatten(1)
    assert rows.shape[0] == 3
    # every kept kernel is one of the original's (BatchNorm at its initial statistics folded)
    assert torch.cdist(rows, original).min(1).values.max() < 1e-4
    # ranked by the L1 norm of the kernels that make each channel and the columns that read it
    norms = original.abs().sum(1) + model[3].weight.detach().abs().sum((0, 2, 3))
    kept = torch.cdist(rows, original).argmin(1)
    assert set(kept.tolist()) == set(torch.topk(norms, 3).indices.tolist())


def test_prune_cli_times_a_latency_budget(tmp_path, capsys, monkeypatch):
    """``--budget latency:0.6``: planned, timed and reported. The "device" is a stand-in whose
    seconds are a fixed cost plus the MACs squared (a convex cost the fitted model, linear in
    MACs and activations, gets wrong), so the correction is exercised without timing noise."""
    import inn.budget.latency as latency

    def seconds(model: nn.Module, inputs: tuple[torch.Tensor, ...], repeats: int = 15) -> float:
        return 0.2 + (count_macs(model, inputs[0][:1]) / 1e5) ** 2

    monkeypatch.setattr(latency, "measure_latency", seconds)
    out = tmp_path / "small.pt"
    code = main(["prune", "tests.cli_models:gray_net", "--budget", "latency:0.6",
                 "--input-shape", "1,1,16,16", "-o", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "latency on cpu at batch 1: " in printed
    ratio = float(printed.split("latency on cpu at batch 1: ")[1].split()[0])
    assert abs(ratio - 0.6) <= latency.MEASURED_TOLERANCE + 0.005  # printed to 2 decimals
