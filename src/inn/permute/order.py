"""Ordering channels along a short open path: from a distance matrix, or from the tensors.

The order is an open travelling-salesman *path* over the channels that minimises the total
variation (see :mod:`inn.permute.distances`). It is found with the usual trick: a dummy city at
distance 0 from every channel is added, a registered solver (see :mod:`inn.permute.solvers`)
searches a closed tour through the ``n + 1`` cities, and the tour is cut at the dummy.

:func:`open_path_order` orders a given distance matrix. :func:`order_channels` orders the
channels of a group of tensors directly and is what conversion uses: small groups get their exact
:func:`~inn.permute.distances.channel_distances`; wide groups are ordered from a proxy matrix
(see :mod:`inn.permute.wide`). Its total variations are always computed exactly from the
tensors.

Whatever the solver finds, the result is never worse than the original order: if it is not
strictly better, the identity is returned.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from inn.errors import ConversionError, ShapeError
from inn.permute.distances import (
    channel_distances,
    flat_slices,
    flats_total_variation,
    merged_slices,
    sample_rows,
    validated_distances,
)
from inn.permute.solvers import (
    GAIN_RTOL,
    MULTI_START_MAX_N,
    SOLVERS,
    TourProblem,
    resolve_solver,
)
from inn.permute.tours import canonical_orientation, cut_at_dummy, path_cost
from inn.permute.wide import order_wide

__all__ = ["EXACT_WORK", "ChannelOrder", "brute_force_order", "open_path_order", "order_channels"]

logger = logging.getLogger(__name__)

#: Number of channels up to which :func:`brute_force_order` enumerates permutations.
_BRUTE_FORCE_MAX = 9

#: Default of :func:`order_channels`: largest ``n * n * d / 2`` (absolute differences) for which
#: the exact distance matrix is computed (about 0.4 s on two cores).
EXACT_WORK = 1e9


def _checked_solver(solver: str, seed: int, time_limit: float | None) -> str:
    """The registered solver (``"auto"`` resolved) after checking the common arguments."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConversionError(f"seed must be an integer, got {seed!r}")
    if time_limit is not None and not (
        isinstance(time_limit, int | float) and math.isfinite(time_limit) and time_limit > 0
    ):
        raise ConversionError(
            f"time_limit must be a positive finite number or None, got {time_limit!r}"
        )
    return resolve_solver(solver)


def open_path_order(
    distances: torch.Tensor,
    *,
    solver: str = "auto",
    seed: int = 0,
    time_limit: float | None = None,
) -> torch.Tensor:
    """A channel order of small total variation (a short open travelling-salesman path).

    The result is never worse than the identity: unless the solver's path is strictly shorter
    than ``range(n)`` (by more than a relative ``1e-12``), ``range(n)`` is returned. Of the two
    orientations of a path of equal cost, the one starting with the smaller index is returned.

    Determinism: ``"greedy-2opt"`` without ``time_limit`` returns the same order for the same
    ``distances`` and ``seed``; its randomness comes from a local ``numpy.random.Generator``
    seeded with ``seed``, and the global numpy/torch generators are never touched. ``"fast-tsp"``
    is exact, hence deterministic, up to 19 channels; above that its internal random generator
    cannot be seeded and its search stops on a wall-clock budget, so repeated calls may return
    different (equally good or nearly so) orders. A ``time_limit`` makes either solver depend
    on timing.

    Args:
        distances: ``(n, n)`` symmetric, non-negative, finite distance matrix, e.g. from
            :func:`channel_distances`. The diagonal is ignored.
        solver: ``"fast-tsp"``, ``"greedy-2opt"``, another name registered with
            :func:`~inn.permute.solvers.register_solver`, or ``"auto"`` (fast-tsp when the
            ``fast_tsp`` package can be imported, else greedy-2opt).
        seed: Seed of ``"greedy-2opt"`` (its starting channels up to 64 channels, the order in
            which its sweeps visit the path above).
        time_limit: Approximate wall-clock budget in seconds for the search. ``None`` lets
            fast-tsp use ``min(max(0.05, n / 2000), 2.0)`` seconds and lets greedy-2opt run
            until a local optimum or its bounded number of sweeps. Fixed ``O(n^2)`` work
            (input checks, quantisation, candidate lists, the greedy construction) is not cut
            short by it.

    Returns:
        int64 CPU tensor of shape ``(n,)``: a permutation of ``range(n)``.

    Raises:
        ShapeError: If ``distances`` is not a square 2-D matrix.
        ConversionError: If ``distances`` has non-finite or negative entries or is not
            symmetric, if ``solver`` is unknown (or ``"fast-tsp"`` is not installed), or if
            ``time_limit`` is not a positive number.
    """
    solver = _checked_solver(solver, seed, time_limit)
    matrix = validated_distances(distances)
    n = matrix.shape[0]
    identity = np.arange(n, dtype=np.int64)
    if n <= 2:
        return torch.from_numpy(identity)
    largest = float(matrix.max())
    if largest == 0.0:
        logger.debug("open_path_order: all-zero distances over %d channels, keeping identity", n)
        return torch.from_numpy(identity)

    started = time.perf_counter()
    deadline = started + time_limit if time_limit is not None else None
    augmented = np.zeros((n + 1, n + 1), dtype=np.float64)
    augmented[:n, :n] = matrix
    problem = TourProblem(augmented, seed, largest * GAIN_RTOL, time_limit, deadline)
    tour = SOLVERS[solver](problem)

    path = cut_at_dummy(tour, n)
    path = canonical_orientation(matrix, path)
    cost = path_cost(matrix, path)
    identity_cost = path_cost(matrix, identity)
    elapsed = time.perf_counter() - started
    if not cost < identity_cost - 1e-12 * identity_cost:
        logger.debug(
            "open_path_order(%s): n=%d, path cost %.6g not below identity %.6g, keeping identity "
            "(%.3f s)",
            solver,
            n,
            cost,
            identity_cost,
            elapsed,
        )
        return torch.from_numpy(identity)
    logger.debug(
        "open_path_order(%s): n=%d, total variation %.6g -> %.6g (%.3f s)",
        solver,
        n,
        identity_cost,
        cost,
        elapsed,
    )
    return torch.from_numpy(np.ascontiguousarray(path, dtype=np.int64))


class ChannelOrder(NamedTuple):
    """Result of :func:`order_channels`.

    ``order`` is the int64 permutation (``range(n)`` unless strictly better); ``before`` and
    ``after`` are the exact total variations (L1, all columns) of the original and
    the new order; ``distance_seconds`` is the time spent on distances and total variations,
    ``order_seconds`` the time spent by the solver.
    """

    order: torch.Tensor
    before: float
    after: float
    distance_seconds: float
    order_seconds: float


def order_channels(
    slices: Sequence[tuple[torch.Tensor, int]],
    *,
    solver: str = "greedy-2opt",
    seed: int = 0,
    time_limit: float | None = None,
    exact_work: float = EXACT_WORK,
) -> ChannelOrder:
    """Order the channels of a group of tensors along a short open path (small total variation).

    The distance between two channels is the one of :func:`channel_distances`. When computing
    that matrix costs at most ``exact_work`` absolute differences (``n * n * d / 2`` for ``n``
    channels of ``d`` values in all), or the group has at most 64 channels (their matrix then
    sampled on a seeded subset of the columns where needed), it is computed and handed to
    :func:`open_path_order`. Wider groups are not worth an exact matrix (seconds per group of
    thousands of channels), so:

    1. the full matrix becomes a proxy: Euclidean distances after dividing each column by the
       square root of its standard deviation (so that columns weigh as in an L1 distance), from
       one matrix product over at most ``1.5e10 / n^2`` seeded columns;
    2. each channel gets 24 candidate neighbours from it (see :mod:`inn.permute.solvers`), and the
       L1 distances of the candidate edges are computed (on a seeded sample of the columns when
       ``n * 24 * d`` exceeds ``3e8``); the proxy is scaled to match them on average;
    3. the path is searched for as by :func:`open_path_order` on that matrix;
    4. every edge of the path that only had a proxy value is computed in L1 and the search
       resumed around it, up to three times.

    Determinism: with ``solver="greedy-2opt"`` and no ``time_limit`` the result depends only on
    the tensors and ``seed`` (local generators; the global numpy and torch generators are not
    touched). Nothing is printed.

    Args:
        slices: ``(tensor, dim)`` pairs as for :func:`channel_distances`.
        solver: as for :func:`open_path_order`.
        seed: seed of the column samples and of the solver.
        time_limit: approximate budget in seconds of the solver (not of the distances).
        exact_work: see above.

    Returns:
        A :class:`ChannelOrder`. Its total variations are exact whichever way the order was
        found, and ``after <= before`` always (pitfall: an order worse than the original).

    Raises:
        ShapeError: as :func:`channel_distances`.
        ConversionError: for non-finite values, an unknown solver, a bad ``seed``,
            ``time_limit`` or ``exact_work``.
    """
    solver = _checked_solver(solver, seed, time_limit)
    if not (isinstance(exact_work, int | float) and exact_work >= 0):
        raise ConversionError(f"exact_work must be a non-negative number, got {exact_work!r}")
    started = time.perf_counter()
    n, flats = flat_slices(slices, "order_channels")
    with torch.no_grad():
        flats = merged_slices(flats)
        identity = torch.arange(n, dtype=torch.int64)
        width = sum(flat.shape[1] for flat in flats)
        before = flats_total_variation(flats, identity)
        if not math.isfinite(before):  # a NaN or infinity in any slice makes the sum one
            raise ConversionError("order_channels: the tensors hold NaN or infinite values")
        if n <= 2 or before == 0.0:
            # Nothing to order (pitfall: all-zero distances must not make the solver loop).
            return ChannelOrder(identity, before, before, time.perf_counter() - started, 0.0)
        generator = torch.Generator().manual_seed(int(seed))
        work = n * n * width / 2
        if n <= MULTI_START_MAX_N or work <= exact_work:
            count = max(1, int(2 * exact_work / (n * n)))
            matrix = channel_distances(
                [
                    (f, 0)
                    for f in (flats if work <= exact_work else sample_rows(flats, count, generator))
                ]
            )
            clock = time.perf_counter()
            distance_seconds = clock - started
            order = open_path_order(matrix, solver=solver, seed=seed, time_limit=time_limit)
            order_seconds = time.perf_counter() - clock
        else:
            setup = time.perf_counter() - started
            order, distance_seconds, order_seconds = order_wide(
                flats, solver, int(seed), generator, time_limit
            )
            distance_seconds += setup
        clock = time.perf_counter()
        after = flats_total_variation(flats, order)
        if not after < before - 1e-12 * before:
            order, after = identity, before
        distance_seconds += time.perf_counter() - clock
    logger.debug(
        "order_channels(%s): n=%d, d=%d, total variation %.6g -> %.6g (%.3f s + %.3f s)",
        solver,
        n,
        width,
        before,
        after,
        distance_seconds,
        order_seconds,
    )
    return ChannelOrder(order, before, after, distance_seconds, order_seconds)


def brute_force_order(distances: torch.Tensor) -> torch.Tensor:
    """Exact shortest open path by enumerating every permutation (reference for small ``n``).

    Among optimal paths the first in lexicographic order whose first index is smaller than its
    last is returned, so the identity wins whenever it is optimal.

    Args:
        distances: ``(n, n)`` symmetric, non-negative, finite distance matrix with ``n <= 9``.

    Returns:
        int64 CPU tensor of shape ``(n,)``: an optimal permutation.

    Raises:
        ShapeError: If ``distances`` is not square 2-D or ``n > 9``.
        ConversionError: If ``distances`` has non-finite or negative entries or is not
            symmetric.
    """
    matrix = validated_distances(distances)
    n = matrix.shape[0]
    if n > _BRUTE_FORCE_MAX:
        raise ShapeError(
            f"brute_force_order enumerates n! permutations and accepts n <= {_BRUTE_FORCE_MAX}, "
            f"got n = {n}"
        )
    if n <= 2:
        return torch.arange(n, dtype=torch.int64)
    count = math.factorial(n)
    perms = np.fromiter(
        itertools.chain.from_iterable(itertools.permutations(range(n))),
        dtype=np.int64,
        count=count * n,
    ).reshape(count, n)
    perms = perms[perms[:, 0] < perms[:, -1]]
    costs = matrix[perms[:, :-1], perms[:, 1:]].sum(axis=1)
    best = perms[int(np.argmin(costs))]
    return torch.from_numpy(np.ascontiguousarray(best))
