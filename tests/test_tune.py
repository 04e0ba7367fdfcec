"""Partition tuning: what it may change, ordered partitions, frozen flags, resizing after."""

import copy

import pytest
import torch

import inn
from inn.budget import count_parameters
from inn.recover import TUNING, FitSettings, fit_calibration
from inn.recover.batches import split_holdout


@pytest.fixture()
def tuned(trained_digits_cnn, digits):
    x, y = digits[0], digits[1]
    calib = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 256, 64)]
    imodel = inn.convert(trained_digits_cnn, x[:2]).resize(compression=0.5)
    return imodel, calib


def _state(model):
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "trainable" not in k and not k.endswith("_extra_state")
    }


def test_tuning_changes_only_partition_points_and_lowers_the_loss(tuned):
    imodel, calib = tuned
    before = _state(imodel)
    report = inn.tune_partition(imodel, calib, steps=40)
    after = _state(imodel)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert report.loss_after < report.loss_before
    tuned_parts = [
        imodel._partitions[g.name] for g in imodel.resizable_groups if g.size < g.full_size
    ]
    assert tuned_parts and all(p.trainable is not None for p in tuned_parts)
    for p in tuned_parts:
        points = p.points().detach()
        inn.numerics.check_partition(points)
        assert points.min() > 0 and points.max() < 1
        assert not torch.allclose(points, inn.numerics.uniform(p.size))  # they moved


def test_frozen_flags_are_restored(tuned):
    imodel, calib = tuned
    params = list(imodel.parameters())
    params[0].requires_grad_(False)
    inn.tune_partition(imodel, calib, steps=5)
    assert params[0].requires_grad is False
    assert all(p.requires_grad for p in params[1:])


def test_tuned_model_still_resizes_and_exports(tuned, digits):
    imodel, calib = tuned
    inn.tune_partition(imodel, calib, steps=5)
    x = digits[2][:16]
    with torch.no_grad():
        tuned_out = imodel(x)
        assert torch.allclose(imodel.export()(x), tuned_out, atol=1e-5)
        imodel.resize(compression=0.3)
        assert torch.allclose(imodel.export()(x), imodel(x), atol=1e-5)


def test_train_biases_changes_biases_not_weights(tuned):
    imodel, calib = tuned
    before = _state(imodel)
    inn.tune_partition(imodel, calib, steps=20, train_biases=True)
    after = _state(imodel)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("bias_function" in k for k in changed)


def test_label_free_batches_and_bad_options(tuned, digits):
    imodel, _ = tuned
    unlabeled = [digits[0][:32], digits[0][32:64]]
    assert inn.tune_partition(imodel, unlabeled, steps=3).steps == 3
    with pytest.raises(inn.InnError, match="needs \\(inputs, targets\\)"):
        inn.tune_partition(imodel, unlabeled, loss="labels", steps=2)
    with pytest.raises(inn.InnError, match="unknown loss"):
        inn.tune_partition(imodel, unlabeled, loss="l2")
    with pytest.raises(inn.InnError, match="empty"):
        inn.tune_partition(imodel, [])


def test_one_settings_object_for_every_recovery_routine(tuned, digits):
    imodel, calib = tuned
    report = inn.tune_partition(imodel, calib, settings=TUNING.replace(steps=2, eval_every=1))
    assert isinstance(report, inn.recover.FitReport) and report.steps == 2
    # keywords change single fields of the given settings (or of the routine's defaults)
    settings = FitSettings(steps=9, lr=0.01)
    assert inn.tune_partition(imodel, calib, settings=settings, steps=1).steps == 1
    with pytest.raises(inn.InnError, match="unknown fit settings \\['step'\\]"):
        inn.tune_partition(imodel, calib, step=3)
    with pytest.raises(inn.InnError, match="need steps >= 0 and lr > 0"):
        FitSettings(steps=-1, lr=0.1)
    with pytest.raises(inn.InnError, match="patience >= 1"):
        TUNING.replace(eval_every=0)


@pytest.mark.parametrize("tune", [False, True])
def test_prune_one_call(trained_digits_cnn, digits, tune):
    x, y = digits[0], digits[1]
    small = inn.prune(
        trained_digits_cnn,
        x[:2],
        compression=0.4,
        calib=[(x[:64], y[:64])],
        tune=tune,
        tune_options={"steps": 5},
        calibrate_options={"steps": 5},
    )
    kept = sum(p.numel() for p in small.parameters()) / sum(
        p.numel() for p in trained_digits_cnn.parameters()
    )
    assert abs(kept - 0.6) < 0.01
    assert all(not type(m).__module__.startswith("inn") for m in small.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in small.modules())  # folded


def test_prune_calibrates_biases_towards_the_original(trained_digits_cnn, digits):
    """With data, the default fits the biases and BatchNorm parameters of the pruned network to
    the original's outputs: on the calibration images it is closer to the original than the
    same pruning without that step, and the BatchNorms are still folded."""
    x = digits[0]
    calib = [x[:64], x[64:128]]
    with torch.no_grad():
        reference = torch.log_softmax(trained_digits_cnn(x[:128]), 1)

    def kl(model):
        with torch.no_grad():
            out = torch.log_softmax(model(x[:128]), 1)
        return float(torch.nn.functional.kl_div(out, reference, log_target=True, reduction="sum"))

    options = {"compression": 0.6, "calib": calib, "convert_options": {"permute": False}}
    plain = inn.prune(trained_digits_cnn, x[:2], calibrate=False, **options)
    calibrated = inn.prune(trained_digits_cnn, x[:2], calibrate_options={"steps": 30}, **options)
    assert kl(calibrated) < kl(plain)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in calibrated.modules())
    assert count_parameters(calibrated) == count_parameters(plain)


def test_bias_calibration_of_a_model_without_biases_changes_nothing():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False))
    pruned = copy.deepcopy(model)
    report = inn.recover.calibrate_biases(pruned, model, [torch.randn(8, 4)])
    assert report.steps == 0 and report.loss_before == report.loss_after
    assert torch.equal(pruned[0].weight, model[0].weight)


class _Constant(torch.nn.Module):
    """Outputs its one parameter, so the calibration loss is (p - target)^2."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1, 1))

    def forward(self, x):
        return self.p.expand(len(x), 1)


def test_a_learning_rate_that_overshoots_is_halved_not_the_end_of_tuning(monkeypatch):
    """Adam's first step moves p by the learning rate: with lr = 1 and the target 0.1 every
    first step overshoots until the rate is below 0.2. Stopping at the first stall (the old
    behaviour, MAX_LR_CUTS = 0) kept the starting point; three halvings reach lr = 0.125."""
    batches = [(torch.zeros(4, 1), None)]
    references = [torch.full((4, 1), 0.1)]
    settings = FitSettings(steps=20, lr=1.0, loss="mse", patience=1, eval_every=1)

    def tune():
        model = _Constant()
        return fit_calibration(model, [model.p], batches, references, settings, desc="")

    monkeypatch.setattr(inn.loop, "MAX_LR_CUTS", 0)
    stopped = tune()
    assert stopped.steps == 1 and stopped.loss_after == pytest.approx(0.01)
    monkeypatch.undo()
    report = tune()
    assert report.loss_before == pytest.approx(0.01)
    assert report.loss_after < 1e-3  # (0.125 - 0.1)^2 after the third halving, or better


def test_holdout_judges_the_fit_on_samples_it_does_not_fit():
    """The fitted rows ask for p = 1, the held-out last row for p = 0 (where p starts): judged on
    the held-out row, no step improves and the start is kept; judged on the fitted rows, p moves
    to 1. The split itself: the last quarter of each batch, at least one row."""
    batches = [(torch.zeros(4, 1), None)]
    references = [torch.tensor([[1.0], [1.0], [1.0], [0.0]])]
    settings = FitSettings(steps=40, lr=0.1, loss="mse", eval_every=1)
    fitted = {}
    for holdout in (0.0, 0.25):
        model = _Constant()
        fit_calibration(
            model, [model.p], batches, references, settings.replace(holdout=holdout), desc=""
        )
        fitted[holdout] = float(model.p)
    assert fitted[0.25] == 0.0
    assert fitted[0.0] > 0.5
    (fit_part, held_part) = split_holdout([(torch.arange(5.0), None)], [torch.arange(5.0)], 0.25)
    assert [b[0].tolist() for b in fit_part[0]] == [[0.0, 1.0, 2.0]]
    assert [b[0].tolist() for b in held_part[0]] == [[3.0, 4.0]]  # ceil(0.25 * 5) = 2 rows
    assert held_part[1][0].tolist() == [3.0, 4.0]
    (fit_one, held_one) = split_holdout([(torch.zeros(1), None)], [None], 0.25)
    assert len(fit_one[0]) == 1 and held_one == ([], [])
    with pytest.raises(inn.InnError, match="holdout"):
        settings.replace(holdout=1.0)


def test_tuning_selected_channels_keeps_batchnorm_statistics_differentiable(
    trained_digits_cnn, digits
):
    """Selected channels with statistics measured at them, then tuned: the points move off the
    selection, so BatchNorm (eval) uses its running statistics sampled at the trained points,
    which carry a gradient; the written-out normalisation must equal F.batch_norm's."""
    x, y = digits[0], digits[1]
    calib = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 128, 64)]
    imodel = inn.convert(trained_digits_cnn, x[:2], fold_batchnorm=False)
    imodel.resize(widths={g.name: g.full_size // 2 for g in imodel.resizable_groups})
    inn.recover.select_channels(imodel)
    inn.reestimate_batchnorm(imodel, calib)
    report = inn.tune_partition(imodel, calib, steps=3)
    assert report.loss_after <= report.loss_before

    from inn.layers.norm import _normalised

    g = torch.Generator().manual_seed(0)
    h, mean, var = (torch.randn(s, generator=g) for s in ((4, 3, 5, 5), (3,), (3,)))
    weight, bias = torch.randn(3, generator=g), torch.randn(3, generator=g)
    var = var.abs()
    expected = torch.nn.functional.batch_norm(h, mean, var, weight, bias, False, 0.0, 1e-5)
    torch.testing.assert_close(_normalised(h, mean, var, weight, bias, 1e-5), expected)
