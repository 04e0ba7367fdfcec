"""Continuous tensors and the partitions at which they are sampled."""

from inn.continuous.partition import Partition
from inn.continuous.tensor import ContinuousTensor, axis_matrix

__all__ = ["ContinuousTensor", "Partition", "axis_matrix"]
