"""Conversion: exact at full width on real architectures, resizing, export, round trips."""

import copy
import subprocess
import sys

import pytest
import torch
import torchvision
from conftest import randomise_batchnorm
from torch import nn

import inn
from inn.graph import analyse, fold_batchnorms, group_members, trace
from inn.permute import permute_groups

TORCHVISION = [
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "vgg11_bn",
    "densenet121",
    "regnet_x_400mf",
    "convnext_tiny",
]
# Ordering the channels of these wide networks takes 14-17 s each on one core; the same
# structures (bottleneck, ConvNeXt block, plain chain) are permuted at small width in
# test_coverage.py, and benchmarks/conversion.py times the full ones.
UNPERMUTED = {"resnet50", "vgg11_bn", "convnext_tiny"}


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-4) -> bool:
    return (a - b).abs().max().item() <= rel * b.abs().max().item() + 1e-6


def check_export(small: nn.Module) -> None:
    """Standard layers only, with attributes that match their tensors."""
    for name, m in small.named_modules():
        assert not type(m).__module__.startswith("inn"), f"{name} is {type(m)}"
        if isinstance(m, nn.Conv2d):
            assert m.weight.shape[:2] == (m.out_channels, m.in_channels // m.groups), name
        if isinstance(m, nn.Linear):
            assert m.weight.shape == (m.out_features, m.in_features), name
        if isinstance(m, nn.BatchNorm2d):
            assert m.weight.shape == (m.num_features,) and m.running_var.shape == (
                m.num_features,
            ), name


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_exact_then_resized_and_exported(name):
    torch.manual_seed(0)
    model = randomise_batchnorm(getattr(torchvision.models, name)(num_classes=10))
    x = torch.randn(2, 3, 32, 32)
    imodel = inn.convert(model, x, permute=name not in UNPERMUTED)
    with torch.no_grad():
        assert close(imodel(x), model(x))
        full = sum(p.numel() for p in model.parameters())
        for compression in (0.3, 0.6):
            # weight sensitivity: this test is about structure; allocations are test_budget's
            imodel.resize(compression=compression, sensitivity="weights")
            small = imodel.export()
            check_export(small)
            kept = sum(p.numel() for p in small.parameters()) / full
            assert abs(kept - (1 - compression)) <= 0.01, (compression, kept)
            assert close(small(x), imodel(x))
            for g in imodel.resizable_groups:
                assert g.size == max(1, round(g.size / g.full_size * g.full_size))
                assert 1 <= g.size <= g.full_size
    assert all(not g.resizable for g in imodel.groups if g.name in ("x:out",))


def test_permutation_alone_never_changes_outputs_and_lowers_total_variation(
    trained_digits_cnn, digits
):
    x = digits[2][:64]
    gm = trace(copy.deepcopy(trained_digits_cnn), x)
    fold_batchnorms(gm)
    with torch.no_grad():
        before = gm(x)
    analysis = analyse(gm)
    report = permute_groups(gm, analysis, seed=0)
    with torch.no_grad():
        assert torch.allclose(gm(x), before, atol=1e-5)
    assert report.total_variation, "no group was permuted"
    assert report.distance_seconds > 0 and report.order_seconds > 0
    for name, (tv_before, tv_after) in report.total_variation.items():
        assert tv_after < tv_before, name  # real trained weights are not smooth in their order
    # members cover conv outputs, the next layer's inputs and the flattened Linear blocks
    members = [m for ms in group_members(gm, analysis).values() for m in ms]
    assert any(m.module == "fc" and m.block == 16 for m in members)


def test_full_width_exact_on_a_trained_model_and_seed_determinism(trained_digits_cnn, digits):
    x = digits[2]
    a = inn.convert(trained_digits_cnn, x[:4], seed=3)
    b = inn.convert(trained_digits_cnn, x[:4], seed=3)
    with torch.no_grad():
        assert close(a(x), trained_digits_cnn(x))
        a.resize(compression=0.4)
        b.resize(compression=0.4)
        for (ka, va), (kb, vb) in zip(
            a.export().state_dict().items(), b.export().state_dict().items(), strict=True
        ):
            assert ka == kb and torch.equal(va, vb)


def test_state_dict_round_trip_restores_sizes_and_deepcopy(trained_digits_cnn, digits):
    x = digits[2][:8]
    imodel = inn.convert(trained_digits_cnn, x)
    name = imodel.resizable_groups[0].name
    imodel.resize(widths={name: 7})
    fresh = inn.convert(trained_digits_cnn, x)
    fresh.load_state_dict(imodel.state_dict())
    assert {g.name: g.size for g in fresh.groups} == {g.name: g.size for g in imodel.groups}
    with torch.no_grad():
        assert torch.equal(fresh(x), imodel(x))
        assert torch.equal(copy.deepcopy(imodel)(x), imodel(x))


def test_user_model_untouched_and_hooks_kept(trained_digits_cnn, digits):
    model = copy.deepcopy(trained_digits_cnn)
    calls = []
    model.conv1.register_forward_hook(lambda m, i, o: calls.append(1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    inn.convert(model, digits[2][:2]).resize(compression=0.5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert isinstance(model.bn1, nn.BatchNorm2d) and len(model.conv1._forward_hooks) == 1
    assert calls == []  # converting did not run the user's hooks
    with torch.no_grad():
        model(digits[2][:2])
    assert len(calls) == 1


def test_exported_model_saves_and_loads_without_inn(trained_digits_cnn, digits, tmp_path):
    x = digits[2][:4]
    imodel = inn.convert(trained_digits_cnn, x).resize(compression=0.5)
    small = imodel.export()
    torch.save(small, tmp_path / "small.pt")
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(small(x), tmp_path / "y.pt")
    script = (
        "import sys; sys.modules['inn'] = None\n"  # importing inn now fails
        "import torch\n"
        f"m = torch.load({str(tmp_path / 'small.pt')!r}, weights_only=False)\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r}); y = torch.load({str(tmp_path / 'y.pt')!r})\n"
        "with torch.no_grad(): assert torch.equal(m(x), y)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_exported_model_scripts_and_exports(trained_digits_cnn, digits):
    x = digits[2][:2]
    small = inn.convert(trained_digits_cnn, x).resize(compression=0.3).export()
    with torch.no_grad():
        expected = small(x)
        assert torch.allclose(torch.jit.script(small)(x), expected, atol=1e-6)
        program = torch.export.export(small, (x,))
        assert torch.allclose(program.module()(x), expected, atol=1e-6)


def test_resize_errors_are_clear(trained_digits_cnn, digits):
    imodel = inn.convert(trained_digits_cnn, digits[2][:2])
    name = imodel.resizable_groups[0].name
    with pytest.raises(inn.InnError, match="did you mean"):
        imodel.resize(widths={name + "x": 3})
    with pytest.raises(inn.InnError, match=r"int in \[1, "):
        imodel.resize(widths={name: 0})
    with pytest.raises(inn.InnError, match="model output"):
        imodel.resize(widths={"fc:out": 5})
    with pytest.raises(inn.InnError, match=r"in \[0, 1\)"):
        imodel.resize(compression=1.0)
    with pytest.raises(inn.InnError, match="exactly one"):
        imodel.resize()


def test_refusals(trained_digits_cnn, digits):
    with pytest.raises(inn.ConversionError, match="training mode"):
        inn.convert(copy.deepcopy(trained_digits_cnn).train(), digits[2][:2])
    broken = copy.deepcopy(trained_digits_cnn)
    with torch.no_grad():
        broken.conv2.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(inn.ConversionError, match=r"'conv2\.weight'.*NaN"):
        inn.convert(broken, digits[2][:2])
    with pytest.raises(inn.ConversionError, match="unknown groups"):
        inn.convert(trained_digits_cnn, digits[2][:2], discrete=["nope"])


def test_discrete_groups_stay_at_full_width(trained_digits_cnn, digits):
    imodel = inn.convert(trained_digits_cnn, digits[2][:2], discrete=["conv3:out"])
    imodel.resize(compression=0.3)
    sizes = {g.name: g for g in imodel.groups}
    assert sizes["conv3:out"].size == 32 and not sizes["conv3:out"].resizable


@pytest.mark.parametrize("rule", ["trapezoid", "simpson"])
def test_closed_rules_at_any_size(rule):
    # a 1-channel and an even-width group: Simpson falls back to trapezoid, trapezoid to rectangle
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Conv2d(4, 6, 1),
        nn.Flatten(),
        nn.Linear(6 * 6 * 6, 2),
    ).eval()
    x = torch.randn(2, 3, 8, 8)
    imodel = inn.convert(model, x, rule=rule)
    with torch.no_grad():
        assert close(imodel(x), model(x))
        for widths in ({"2:out": 2, "4:out": 3}, {"2:out": 1, "4:out": 4}):
            imodel.resize(widths=widths)
            assert close(imodel.export()(x), imodel(x))
