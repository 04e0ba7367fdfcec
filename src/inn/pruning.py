"""One call from a trained network to a smaller plain one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from inn.budget import Budget, output_errors
from inn.convert import IntegralModel, convert
from inn.data import batched
from inn.graph import fold_batchnorms
from inn.recover import (
    calibrate_biases,
    check_sampling,
    choose_sampling,
    reestimate_batchnorm,
    select_channels,
    tune_partition,
)

__all__ = ["export_repaired", "prune", "resize_to_budget"]


def prune(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    *,
    compression: float | None = None,
    widths: Mapping[str, int] | None = None,
    budget: Budget | Mapping[str, float] | None = None,
    calib: Iterable | None = None,
    calibrate: bool = True,
    sampling: str = "auto",
    tune: bool = False,
    convert_options: Mapping[str, Any] | None = None,
    resize_options: Mapping[str, Any] | None = None,
    tune_options: Mapping[str, Any] | None = None,
    calibrate_options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Convert, resize to a budget, repair the statistics on ``calib`` and export.

    The defaults are the best combination measured (README, "Pruning to a budget"). With
    ``calib``: BatchNorms are kept through conversion, the widths per group are allocated by the
    output change each group causes on ``calib`` (with the channels it may get: resampled or
    selected, whichever loses less), the BatchNorm statistics are measured again at
    the new widths, each narrowed group's channels resampled or selected (``sampling``), the
    biases and normalisation parameters of the export fitted to the original network's outputs
    on ``calib`` (:func:`inn.recover.calibrate_biases`), and the BatchNorms folded. Without
    data: BatchNorms folded, widths by the data-free sensitivity, uniform points.

    Args:
        model: trained network in eval mode (not modified).
        example_inputs: a tensor or tuple of tensors the model accepts.
        compression: fraction of parameters to remove; or ``widths`` per group; or a
            ``budget`` in parameters, MACs or latency (see :meth:`IntegralModel.plan`).
        calib: calibration batches (``(inputs, targets)`` or ``inputs``; a few hundred images),
            or a dataset of samples (batched by :func:`inn.data.batched`).
        calibrate: with ``calib``, fit the biases and normalisation parameters of the pruned
            network to the original's outputs (150 Adam steps; on the efficient networks
            measured it is worth 5-25 points at 40-70 % fewer parameters). The targets of
            ``calib`` are not used.
        tune: also tune the partition points on ``calib`` (Pipeline B,
            :func:`inn.tune_partition`), then measure the statistics again. Off by default: on
            the networks measured, it adds no accuracy once widths are allocated and the
            statistics re-estimated, and it costs most of the time.
        sampling: how each narrowed group gets its channels: ``"resample"`` (the integral
            network's uniform points), ``"select"`` (its original channels whose weights, made
            and read, have the largest L1 norm, :func:`inn.recover.select_channels`) or
            ``"auto"`` (default): with ``calib``, per group whichever of the two loses less
            before calibration
            (:func:`inn.recover.choose_sampling`), then that mix, all-resampled and
            all-selected are each calibrated and the lowest held-out calibration loss is kept;
            without ``calib``, resampling.
        convert_options: keyword arguments of :func:`inn.convert`.
        resize_options: keyword arguments of :meth:`IntegralModel.resize`.
        tune_options: keyword arguments of :func:`inn.tune_partition`.
        calibrate_options: keyword arguments of :func:`inn.recover.calibrate_biases`.

    Returns:
        A plain ``torch.nn.Module`` at the new widths.
    """
    check_sampling(sampling)
    calib = list(batched(calib)) if calib is not None else None
    imodel = convert(
        model, example_inputs, **{"fold_batchnorm": calib is None, **dict(convert_options or {})}
    )
    if widths is not None:
        imodel.resize(widths=widths, **dict(resize_options or {}))
    else:
        resize_to_budget(
            imodel, calib, compression, budget=budget, sampling=sampling,
            **dict(resize_options or {}),
        )  # fmt: skip
    return export_repaired(
        imodel, model, calib, calibrate=calibrate, sampling=sampling, tune=tune,
        tune_options=tune_options, calibrate_options=calibrate_options,
    )  # fmt: skip


def resize_to_budget(
    imodel: IntegralModel,
    calib: Sequence | None,
    compression: float | None = None,
    *,
    budget: Budget | Mapping[str, float] | None = None,
    sampling: str = "auto",
    **plan_options: Any,
) -> IntegralModel:
    """Resize ``imodel`` to ``compression`` or ``budget`` as :func:`prune` does (in place;
    returns it). With ``calib`` and ``sensitivity`` ``"auto"`` (default) or ``"outputs"``, the
    widths are allocated by each group's output change on ``calib`` with the channels that
    ``sampling`` may give it (with ``"auto"``, the lower of resampled and selected).
    ``plan_options``: those of :meth:`IntegralModel.plan` (``round_to``, ``min_width``...).
    """
    check_sampling(sampling)
    options = {"data": calib, **plan_options}
    if calib is not None and options.get("sensitivity", "auto") in ("auto", "outputs"):
        samplings = ("resample", "select") if sampling == "auto" else (sampling,)
        options["sensitivity"] = output_errors(imodel, calib, samplings=samplings)
    return imodel.resize(compression, budget=budget, **options)


def export_repaired(
    imodel: IntegralModel,
    original: nn.Module,
    calib: Iterable | None,
    *,
    calibrate: bool = True,
    sampling: str = "auto",
    tune: bool = False,
    tune_options: Mapping[str, Any] | None = None,
    calibrate_options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """The second half of :func:`prune`, for an integral model resized by hand: with ``calib``,
    the BatchNorm statistics measured again at the new widths, optionally the partition tuned,
    each narrowed group's channels resampled or selected (``sampling``), the biases and BatchNorm
    parameters of the export fitted to ``original``'s outputs; then the plain model, BatchNorms
    folded. Without ``calib``: the export as it is (channels selected if ``sampling="select"``).

    Args:
        imodel: the integral model at its new widths (converted with ``fold_batchnorm=False``
            for the statistics to be repaired).
        original: the network it was converted from (the reference of the calibration).
        calib: calibration batches, or ``None``.
        calibrate, sampling, tune, tune_options, calibrate_options: as in :func:`prune`.
    """
    check_sampling(sampling)
    calib = list(batched(calib)) if calib is not None else None
    if sampling == "select":
        select_channels(imodel)
    if calib is None:
        return imodel.export()
    calibrate_options = dict(calibrate_options or {})
    progress = bool(calibrate_options.get("progress", False))
    choice = (
        choose_sampling(imodel, original, calib, progress=progress) if sampling == "auto" else {}
    )
    if sampling != "auto":
        reestimate_batchnorm(imodel, calib)
    if tune:
        tune_partition(imodel, calib, **dict(tune_options or {}))
        reestimate_batchnorm(imodel, calib)
    if not calibrate:
        return imodel.export()
    exports = [imodel.export(fold_batchnorm=False)]
    if not tune:
        exports += _uniform_alternatives(imodel, calib, set(choice.values()))
    losses = []
    for pruned in exports:
        report = calibrate_biases(pruned, original, calib, **calibrate_options)
        losses.append(report.loss_after)
    pruned = exports[losses.index(min(losses))]
    fold_batchnorms(pruned)
    return pruned


def _uniform_alternatives(imodel: IntegralModel, calib: list, chosen: set[str]) -> list[nn.Module]:
    """The exports (BatchNorms kept, statistics measured) with every narrowed group resampled
    and with every one selected, except the one that is the choice already. The greedy choice
    is judged before calibration; calibration can change which is best, so the three are
    calibrated and the lowest held-out calibration loss wins."""
    if not chosen:  # nothing narrowed that can be selected: resampled is the only option
        return []
    widths = {g.name: g.size for g in imodel.resizable_groups if g.size < g.full_size}
    exports = []
    with imodel.widths_kept():
        for kind in ("resample", "select"):
            if chosen == {kind}:
                continue
            imodel.resize(widths=widths)
            if kind == "select":
                select_channels(imodel)
            reestimate_batchnorm(imodel, calib)
            exports.append(imodel.export(fold_batchnorm=False))
    reestimate_batchnorm(imodel, calib)  # back to the statistics of the chosen points
    return exports
