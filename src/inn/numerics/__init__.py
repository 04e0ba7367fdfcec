"""Numerics: partitions of [0, 1], quadrature rules, cubic convolution interpolation."""

from inn.numerics.interpolation import (
    KEYS_A,
    apply_taps,
    cubic_kernel,
    interpolate,
    interpolation_matrix,
    resample,
    resampling_matrix,
)
from inn.numerics.partitions import (
    TrainablePartition,
    check_partition,
    composite,
    equidistributed,
    gauss_legendre,
    random_uniform,
    uniform,
)
from inn.numerics.quadrature import RULES, integrate, quadrature_weights, rule_needs_endpoints

__all__ = [
    "KEYS_A",
    "RULES",
    "TrainablePartition",
    "apply_taps",
    "check_partition",
    "composite",
    "cubic_kernel",
    "equidistributed",
    "gauss_legendre",
    "integrate",
    "interpolate",
    "interpolation_matrix",
    "quadrature_weights",
    "random_uniform",
    "resample",
    "resampling_matrix",
    "rule_needs_endpoints",
    "uniform",
]
