"""inn: Integral Neural Networks on PyTorch.

Weights are continuous functions along channel axes, so one network can be sampled at any
width: structured pruning at inference time without fine-tuning.

The names here are the whole everyday API; each concept's package holds the rest:

* convert and resize: :func:`convert` -> :class:`IntegralModel` (``groups``, ``resize``,
  ``plan``, ``export``), :class:`Group`; :mod:`inn.convert`;
* one call: :func:`prune` (convert, resize to a budget, recover on calibration data, export);
* budgets: :class:`Budget` (parameters, MACs, latency); :mod:`inn.budget`;
* recovery after resizing: :func:`tune_partition`, :func:`smooth_weights`,
  :func:`reestimate_batchnorm`; :mod:`inn.recover`;
* random-width training: :mod:`inn.train` (``inn.train.train``, ``TrainSettings``);
* teaching inn a custom layer: :func:`register_channel_rule`, :func:`register_leaf_module`,
  :func:`register_integral_layer`; :mod:`inn.graph`, :mod:`inn.layers`;
* numerical integration: :func:`integrate`; :mod:`inn.numerics`, :mod:`inn.continuous`;
* errors: every error raised on purpose derives from :class:`InnError`.
"""

# the subpackage, so that ``import inn`` gives ``inn.train.train`` as the docs say
from inn import train
from inn.budget import Budget
from inn.convert import Group, IntegralModel, convert
from inn.errors import (
    ConversionError,
    InnError,
    InterpolationError,
    PartitionError,
    QuadratureError,
    ShapeError,
)
from inn.graph import register_channel_rule, register_leaf_module
from inn.layers import register_integral_layer
from inn.numerics import integrate
from inn.pruning import prune
from inn.recover import reestimate_batchnorm, smooth_weights, tune_partition

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "ConversionError",
    "Group",
    "InnError",
    "IntegralModel",
    "InterpolationError",
    "PartitionError",
    "QuadratureError",
    "ShapeError",
    "convert",
    "integrate",
    "prune",
    "reestimate_batchnorm",
    "register_channel_rule",
    "register_integral_layer",
    "register_leaf_module",
    "smooth_weights",
    "train",
    "tune_partition",
]
