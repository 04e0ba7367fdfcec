"""Integral layers: standard layers whose tensors are continuous along their channel axes."""

from inn.layers.base import IntegralLayer, PartitionSpec
from inn.layers.conv import (
    IntegralConv1d,
    IntegralConv2d,
    IntegralConv3d,
    IntegralConvTranspose2d,
    conv_mode,
)
from inn.layers.linear import IntegralLinear
from inn.layers.norm import IntegralBatchNorm1d, IntegralBatchNorm2d, IntegralBatchNorm3d

__all__ = [
    "IntegralBatchNorm1d",
    "IntegralBatchNorm2d",
    "IntegralBatchNorm3d",
    "IntegralConv1d",
    "IntegralConv2d",
    "IntegralConv3d",
    "IntegralConvTranspose2d",
    "IntegralLayer",
    "IntegralLinear",
    "PartitionSpec",
    "conv_mode",
]
