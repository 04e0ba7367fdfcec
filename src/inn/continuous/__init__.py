"""Partitions of every kind and the continuous tensors sampled at them.

* :class:`Partition`: the points of one channel axis, shared by every tensor that uses it
  (uniform by default, trainable after :meth:`Partition.make_trainable`);
* :class:`TrainablePartition`: points that are parameters, strictly increasing in [0, 1];
* :func:`composite`, :func:`random_uniform`: concatenated sub-partitions, a uniform partition
  of random size;
* :func:`channel_density`, :func:`equidistributed`: data-free placement where node values vary;
* :class:`ContinuousTensor`: node values on a lattice, sampled at partitions.

The grids underneath (uniform layouts, Gauss-Legendre nodes) are :mod:`inn.numerics`'.
"""

from inn.continuous.partition import Partition
from inn.continuous.placement import DENSITIES, channel_density, equidistributed
from inn.continuous.points import composite, random_uniform
from inn.continuous.tensor import ContinuousTensor, axis_matrix
from inn.continuous.trainable import TrainablePartition

__all__ = [
    "DENSITIES",
    "ContinuousTensor",
    "Partition",
    "TrainablePartition",
    "axis_matrix",
    "channel_density",
    "composite",
    "equidistributed",
    "random_uniform",
]
