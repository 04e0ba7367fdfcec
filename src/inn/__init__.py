"""inn: Integral Neural Networks on PyTorch.

Weights are continuous functions along channel axes, so one network can be sampled at any
width: structured pruning at inference time without fine-tuning.
"""

from inn import budget, loop, numerics, permute, train
from inn.budget import Budget, Plan
from inn.continuous import ContinuousTensor, Partition
from inn.convert import ConversionReport, Coverage, Group, IntegralModel, convert
from inn.errors import (
    ConversionError,
    InnError,
    InterpolationError,
    PartitionError,
    QuadratureError,
    ShapeError,
)
from inn.graph import register_channel_rule, register_leaf_module
from inn.layers import (
    IntegralBatchNorm1d,
    IntegralBatchNorm2d,
    IntegralBatchNorm3d,
    IntegralConv1d,
    IntegralConv2d,
    IntegralConv3d,
    IntegralConvTranspose2d,
    IntegralLayer,
    IntegralLinear,
)
from inn.numerics import integrate
from inn.prune import prune
from inn.recover import (
    FitReport,
    place_points,
    reestimate_batchnorm,
    reestimate_full_width_batchnorm,
    smooth_weights,
    tune_partition,
)

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "ContinuousTensor",
    "ConversionError",
    "ConversionReport",
    "Coverage",
    "FitReport",
    "Group",
    "InnError",
    "IntegralBatchNorm1d",
    "IntegralBatchNorm2d",
    "IntegralBatchNorm3d",
    "IntegralConv1d",
    "IntegralConv2d",
    "IntegralConv3d",
    "IntegralConvTranspose2d",
    "IntegralLayer",
    "IntegralLinear",
    "IntegralModel",
    "InterpolationError",
    "Partition",
    "PartitionError",
    "Plan",
    "QuadratureError",
    "ShapeError",
    "budget",
    "convert",
    "integrate",
    "loop",
    "numerics",
    "permute",
    "place_points",
    "prune",
    "reestimate_batchnorm",
    "reestimate_full_width_batchnorm",
    "register_channel_rule",
    "register_leaf_module",
    "smooth_weights",
    "train",
    "tune_partition",
]
