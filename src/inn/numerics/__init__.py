"""Numerics: grids on [0, 1], quadrature rules, cubic convolution interpolation."""

from inn.numerics.grids import check_partition, gauss_legendre, points_at, uniform
from inn.numerics.interpolation import (
    KEYS_A,
    apply_taps,
    cubic_kernel,
    interpolate,
    interpolation_matrix,
    resample,
    resampling_matrix,
)
from inn.numerics.quadrature import RULES, integrate, quadrature_weights, rule_needs_endpoints

__all__ = [
    "KEYS_A",
    "RULES",
    "apply_taps",
    "check_partition",
    "cubic_kernel",
    "gauss_legendre",
    "integrate",
    "interpolate",
    "interpolation_matrix",
    "points_at",
    "quadrature_weights",
    "resample",
    "resampling_matrix",
    "rule_needs_endpoints",
    "uniform",
]
