"""inn: Integral Neural Networks on PyTorch.

Weights are continuous functions along channel axes, so one network can be sampled at any
width: structured pruning at inference time without fine-tuning.
"""

from inn import numerics
from inn.continuous import ContinuousTensor, Partition
from inn.errors import (
    ConversionError,
    InnError,
    InterpolationError,
    PartitionError,
    QuadratureError,
    ShapeError,
)
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

__version__ = "0.1.0"

__all__ = [
    "ContinuousTensor",
    "ConversionError",
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
    "InterpolationError",
    "Partition",
    "PartitionError",
    "QuadratureError",
    "ShapeError",
    "integrate",
    "numerics",
]
