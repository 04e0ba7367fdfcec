"""Channel permutation: order the channels of every group so that weights vary smoothly.

When a trained (discrete) network is turned into an integral one, the channels of every
dependency group are treated as samples of a function along the channel axis. Trained channels
come in arbitrary order, so before conversion they are reordered to make neighbouring channels
as similar as possible: the order is an open travelling-salesman *path* over the channels that
minimises the total variation

.. math::

    \\mathrm{TV}(\\pi) = \\sum_{k=0}^{n-2} d(\\pi_k, \\pi_{k+1}),

where :math:`d(i, j)` is the L1 distance between channel ``i``'s and channel ``j``'s slices of
all member tensors of the group.

* :mod:`~inn.permute.distances`: :func:`channel_distances`, :func:`total_variation`,
  :func:`channel_total_variation`;
* :mod:`~inn.permute.solvers`: the registry of order solvers (``"greedy-2opt"``,
  ``"fast-tsp"``; ``"auto"`` picks one), :func:`register_solver` to add one;
* :mod:`~inn.permute.order`: :func:`open_path_order` (a distance matrix) and
  :func:`order_channels` (the tensors of a group, wide groups via :mod:`~inn.permute.wide`);
* :mod:`~inn.permute.apply`: :func:`permute_groups` reorders every group of a traced network.
"""

from inn.permute.apply import PermutationReport, permute_groups
from inn.permute.distances import channel_distances, channel_total_variation, total_variation
from inn.permute.order import (
    EXACT_WORK,
    ChannelOrder,
    brute_force_order,
    open_path_order,
    order_channels,
)
from inn.permute.solvers import SOLVERS, Solver, TourProblem, register_solver, resolve_solver

__all__ = [
    "EXACT_WORK",
    "SOLVERS",
    "ChannelOrder",
    "PermutationReport",
    "Solver",
    "TourProblem",
    "brute_force_order",
    "channel_distances",
    "channel_total_variation",
    "open_path_order",
    "order_channels",
    "permute_groups",
    "register_solver",
    "resolve_solver",
    "total_variation",
]
