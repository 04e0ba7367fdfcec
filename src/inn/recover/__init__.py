"""Recovery after resizing: a few hundred images and minutes, on one settings object.

* :func:`tune_partition`: train where the channels sit (Pipeline B);
* :func:`smooth_weights`: smoother weight functions at full width, so fewer points lose less;
* :func:`reestimate_batchnorm` / :func:`reestimate_full_width_batchnorm` /
  :func:`reestimate_width_statistics`: BatchNorm statistics at the current widths / for every
  width / per width bucket, so that every width needs no data;
* :func:`choose_sampling` / :func:`select_channels`: per narrowed group, resampled or selected
  original channels, whichever loses less on the calibration data / selected by L1 norm;
* :func:`calibrate_biases`: biases and normalisation parameters of a plain pruned model;
* :func:`place_points`: data-free points where the weights vary most (no training).

The fitting routines take a :class:`FitSettings` (defaults :data:`TUNING`, :data:`SMOOTHING`,
:data:`BIAS_CALIBRATION`; single fields as keywords) and return a :class:`FitReport`, all on
:func:`fit_calibration`, the calibration flavour of the one fit loop (:mod:`inn.loop`).
"""

from inn.recover.batches import Batch, as_batches
from inn.recover.biases import BIAS_CALIBRATION, calibrate_biases
from inn.recover.calibration import FitReport, fit_calibration, trainable_only
from inn.recover.losses import LOSSES, distillation_loss, mean_loss
from inn.recover.placement import place_points
from inn.recover.selection import (
    SAMPLINGS,
    channel_scores,
    check_sampling,
    choose_sampling,
    select_channels,
)
from inn.recover.settings import FitSettings
from inn.recover.smooth import SMOOTHING, roughness, roughness_penalty, smooth_weights
from inn.recover.statistics import (
    reestimate_batchnorm,
    reestimate_full_width_batchnorm,
    reestimate_width_statistics,
)
from inn.recover.tune import TUNING, tune_partition

__all__ = [
    "BIAS_CALIBRATION",
    "LOSSES",
    "SAMPLINGS",
    "SMOOTHING",
    "TUNING",
    "Batch",
    "FitReport",
    "FitSettings",
    "as_batches",
    "calibrate_biases",
    "channel_scores",
    "check_sampling",
    "choose_sampling",
    "distillation_loss",
    "fit_calibration",
    "mean_loss",
    "place_points",
    "reestimate_batchnorm",
    "reestimate_full_width_batchnorm",
    "reestimate_width_statistics",
    "roughness",
    "roughness_penalty",
    "select_channels",
    "smooth_weights",
    "trainable_only",
    "tune_partition",
]
