"""Integral layers: standard layers whose tensors are continuous along their channel axes,
chosen for a module by a registry (:func:`register_integral_layer`, :func:`integral_layer_for`)."""

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
from inn.layers.narrow_statistics import NarrowStatistics
from inn.layers.norm import (
    IntegralBatchNorm,
    IntegralBatchNorm1d,
    IntegralBatchNorm2d,
    IntegralBatchNorm3d,
)
from inn.layers.registry import (
    LayerFactory,
    LayerRequest,
    integral_layer_for,
    register_integral_layer,
)
from inn.layers.wrapped import IntegralSlice, IntegralSplit, IntegralTensor, IntegralWrapped
from inn.module_sizes import fit_size_attributes

__all__ = [
    "IntegralAttention",
    "IntegralBatchNorm",
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
    "IntegralSlice",
    "IntegralSplit",
    "IntegralTensor",
    "IntegralWindowAttention",
    "IntegralWrapped",
    "LayerFactory",
    "LayerRequest",
    "NarrowStatistics",
    "PartitionSpec",
    "conv_mode",
    "fit_size_attributes",
    "integral_layer_for",
    "plain_attention",
    "register_integral_layer",
]
