"""Integral layers: standard layers whose tensors are continuous along their channel axes."""

from inn.layers.attention import IntegralAttention, IntegralWindowAttention, plain_attention
from inn.layers.base import IntegralLayer, PartitionSpec
from inn.layers.conv import (
    IntegralConv1d,
    IntegralConv2d,
    IntegralConv3d,
    IntegralConvTranspose1d,
    IntegralConvTranspose2d,
    IntegralConvTranspose3d,
    conv_mode,
)
from inn.layers.linear import IntegralLinear
from inn.layers.norm import IntegralBatchNorm1d, IntegralBatchNorm2d, IntegralBatchNorm3d
from inn.layers.wrapped import IntegralSplit, IntegralTensor, IntegralWrapped
from inn.module_sizes import fit_size_attributes

__all__ = [
    "IntegralAttention",
    "IntegralBatchNorm1d",
    "IntegralBatchNorm2d",
    "IntegralBatchNorm3d",
    "IntegralConv1d",
    "IntegralConv2d",
    "IntegralConv3d",
    "IntegralConvTranspose1d",
    "IntegralConvTranspose2d",
    "IntegralConvTranspose3d",
    "IntegralLayer",
    "IntegralLinear",
    "IntegralSplit",
    "IntegralTensor",
    "IntegralWindowAttention",
    "IntegralWrapped",
    "PartitionSpec",
    "conv_mode",
    "fit_size_attributes",
    "plain_attention",
]
