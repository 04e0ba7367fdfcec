"""BatchNorm kept through conversion, re-estimated at a new width, folded at export."""

import torch
from torch import nn

import inn
from inn.budget import count_parameters
from inn.recover import reestimate_batchnorm
from tests.conftest import two_conv_net


def _net() -> nn.Module:
    return two_conv_net(16, 24, 5)


def test_kept_batchnorm_is_exact_and_export_folds_it():
    model, x = _net(), torch.randn(4, 3, 8, 8)
    imodel = inn.convert(model, x, fold_batchnorm=False)
    assert any(isinstance(m, inn.layers.IntegralBatchNorm2d) for m in imodel.modules())
    with torch.no_grad():
        torch.testing.assert_close(imodel(x), model(x), atol=1e-5, rtol=1e-5)
        imodel.resize(widths={"0:out": 10, "3:out": 13})
        small = imodel.export()
        assert not any(isinstance(m, nn.BatchNorm2d) for m in small.modules())
        torch.testing.assert_close(small(x), imodel(x), atol=1e-5, rtol=1e-5)
    # the cost model counts the folded export: BatchNorm parameters gone, a bias added
    assert imodel.cost("params") == count_parameters(small)
    assert any(isinstance(m, nn.BatchNorm2d) for m in imodel.export(fold_batchnorm=False).modules())


def test_reestimated_statistics_are_the_measured_moments():
    """Against a hand computation: the statistics of the second BatchNorm are the mean and
    unbiased variance of its input, where the first BatchNorm already uses its own new ones."""
    model, x = _net(), torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    imodel = inn.convert(model, x[:1], fold_batchnorm=False)
    imodel.resize(widths={"0:out": 9, "3:out": 11})
    assert reestimate_batchnorm(imodel, [x[:40], (x[40:], None)]) == 2
    small = imodel.export(fold_batchnorm=False).eval()
    conv1, bn1, conv2, bn2 = (small.get_submodule(n) for n in ("0", "1", "3", "4"))
    with torch.no_grad():
        h = conv1(x)
        mean, var = h.mean((0, 2, 3)), h.var((0, 2, 3))
        torch.testing.assert_close(bn1.running_mean, mean, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(bn1.running_var, var, atol=1e-5, rtol=1e-4)
        # inside the pass each batch was normalised by its own statistics
        parts = [conv2(torch.relu(nn.functional.batch_norm(conv1(b), None, None, bn1.weight, bn1.bias, True)))
                 for b in (x[:40], x[40:])]  # fmt: skip
        h2 = torch.cat([p.movedim(1, 0).reshape(11, -1) for p in parts], 1)
        torch.testing.assert_close(bn2.running_mean, h2.mean(1), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(bn2.running_var, h2.var(1), atol=1e-5, rtol=1e-4)
    # a new width drops the measured statistics; full width is exact again
    imodel.resize(widths={"0:out": 16, "3:out": 24})
    with torch.no_grad():
        torch.testing.assert_close(imodel(x), model(x), atol=1e-5, rtol=1e-5)


def test_plain_model_running_statistics_are_replaced():
    model, x = _net(), torch.randn(32, 3, 8, 8)
    reestimate_batchnorm(model, [x])
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model[1].running_mean, model[0](x).mean((0, 2, 3)))


def test_empty_or_bad_data_is_refused():
    model = _net()
    for bad in ([], [3]):
        try:
            reestimate_batchnorm(model, bad)
        except inn.InnError as error:
            assert "calibration" in str(error)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_full_width_is_exact_again_after_reestimating_a_narrowed_model():
    """Statistics measured while another group was narrow do not outlive that width (a
    BatchNorm at full width sees other inputs when the layers before it are narrowed)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
    ).eval()  # fmt: skip
    x = torch.randn(16, 3, 6, 6)
    imodel = inn.convert(model, x[:1], fold_batchnorm=False)
    with torch.no_grad():
        reference = imodel(x)
        first = imodel.resizable_groups[0].name
        with imodel.widths_kept():
            imodel.resize(widths={first: 3})
            inn.reestimate_batchnorm(imodel, [x])
            assert not torch.allclose(imodel(x), reference)
        assert torch.allclose(imodel(x), reference, atol=1e-6)


def test_a_dataset_of_samples_is_calibration_data_in_batches():
    """A map-style dataset (single samples, as ``torchvision`` gives) calibrates like the same
    samples in explicit batches of 64: the statistics by hand, ``inn.prune`` against itself."""
    from torch.utils.data import TensorDataset

    x = torch.randn(100, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    samples = TensorDataset(x, torch.arange(100) % 5)
    model = _net()
    assert reestimate_batchnorm(model, samples) == 2
    with torch.no_grad():
        torch.testing.assert_close(model[1].running_mean, model[0](x).mean((0, 2, 3)))
    options = {"compression": 0.4, "convert_options": {"seed": 0}, "calibrate_options": {"steps": 3}}
    torch.manual_seed(0)
    from_samples = inn.prune(_net(), x[:1], calib=samples, **options)
    torch.manual_seed(0)
    from_batches = inn.prune(_net(), x[:1], calib=[(x[:64], None), (x[64:], None)], **options)
    with torch.no_grad():
        torch.testing.assert_close(from_samples(x), from_batches(x))
