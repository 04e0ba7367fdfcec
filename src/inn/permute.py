"""Channel permutation: order the channels of a dependency group so that weights vary smoothly.

When a trained (discrete) network is turned into an integral one, the channels of every
dependency group are treated as samples of a function along the channel axis. Trained channels
come in arbitrary order, so before conversion they are reordered to make neighbouring channels
as similar as possible: the order is an open travelling-salesman *path* over the channels that
minimises the total variation

.. math::

    \\mathrm{TV}(\\pi) = \\sum_{k=0}^{n-2} d(\\pi_k, \\pi_{k+1}),

where :math:`d(i, j)` is the L1 distance between channel ``i``'s and channel ``j``'s slices of
all member tensors of the group (see :func:`channel_distances`).

The open path is found with the usual trick: a dummy city at distance 0 from every channel is
added, a closed tour through the ``n + 1`` cities is searched for, and the tour is cut at the
dummy. Two solvers are available:

* ``"greedy-2opt"`` (deterministic): up to 64 channels, greedy nearest-neighbour paths from
  several seeded starting channels improved by exhaustive 2-opt and Or-opt moves; above that, a
  greedy-edge path over candidate neighbours (the 12 nearest channels, plus the 12 nearest after
  taking off each channel's mean distance, which keeps "hub" channels close to everyone from
  filling every list) improved by 2-opt and Or-opt moves that add a candidate edge: every sweep
  evaluates the moves around the channels that changed with array operations and applies all
  the improving ones whose stretches of the path do not cross (nested reversals included). Up
  to 1024 channels a few rounds of exhaustive 2-opt / Or-opt follow; up to 384, the exhaustive
  search from the best nearest-neighbour path is run as well (the better result is kept);
* ``"fast-tsp"``: the `fast_tsp` package (exact for ``n <= 19`` channels, a local search with a
  time budget above that), followed by the same deterministic polish on the unquantised
  distances.

:func:`open_path_order` orders a given distance matrix. :func:`order_channels` orders the
channels of a group of tensors directly and is what conversion uses: small groups get their exact
:func:`channel_distances`; for wide groups (where the ``n x n x d`` L1 computation would cost
seconds) the full matrix is a cheap proxy (Euclidean distances of rescaled columns, from one
matrix product, scaled to L1 units), the candidate neighbours of every channel are
taken from it, and only the distances the search relies on (candidate edges, then every edge
of the path found) are computed in L1.
Its total variations are always computed exactly from the tensors.

Whatever the solver finds, the result is never worse than the original order: if it is not
strictly better, the identity is returned.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch

from inn.errors import ConversionError, ShapeError

__all__ = [
    "SOLVERS",
    "ChannelOrder",
    "brute_force_order",
    "channel_distances",
    "channel_total_variation",
    "open_path_order",
    "order_channels",
    "total_variation",
]

logger = logging.getLogger(__name__)

#: Names accepted by the ``solver`` argument of :func:`open_path_order`.
SOLVERS: tuple[str, ...] = ("auto", "fast-tsp", "greedy-2opt")

#: Largest integer distance handed to fast_tsp (its matrices must fit in uint16: 0..65535).
_FAST_TSP_MAX = 65000

#: Number of channels up to which :func:`brute_force_order` enumerates permutations.
_BRUTE_FORCE_MAX = 9

#: Element budget (float64 values) of one column chunk in :func:`channel_distances`.
_CHUNK_ELEMENTS = 1 << 24

#: Rows per block of :func:`channel_distances` (blocks below the diagonal are skipped).
_BLOCK_ROWS = 512

#: Below this many fast_tsp units for a typical nearest-neighbour distance, the quantised
#: problem is deemed too coarse and greedy-2opt runs as well (the better path is kept).
_COARSE_UNITS = 200.0

#: Relative tolerance of the symmetry check of a distance matrix.
_SYMMETRY_RTOL = 1e-6

#: Moves must gain more than this fraction of the largest distance to be applied.
_GAIN_RTOL = 1e-10

#: Rounds of (2-opt passes, Or-opt pass) of the local search, and 2-opt passes per round.
_MAX_ROUNDS = 12
_MAX_TWO_OPT_PASSES = 30

#: Rounds of the exhaustive polish (after fast_tsp, or after the candidate search).
_POLISH_ROUNDS = 2

#: Number of seeded starting channels of the greedy nearest-neighbour construction.
_NUM_STARTS = 8

#: Up to this many channels, "greedy-2opt" runs the exhaustive multi-start search (cheap there).
_MULTI_START_MAX_N = 64

#: Up to this many channels, the candidate search is followed by the exhaustive polish, and up
#: to the second number, the exhaustive search from the best nearest-neighbour path runs too.
_POLISH_MAX_N = 1024
_SECOND_SEARCH_MAX_N = 384

#: Candidate neighbours per channel: the nearest ones, and the nearest after centring.
_NEAR_CANDIDATES = 12
_CENTRED_CANDIDATES = 12

#: Or-opt moves try the first this many candidates of a segment end (2-opt tries them all).
_INSERTION_CANDIDATES = 16

#: Sweeps of the candidate local search: at most this many over all channels, and in all.
_MAX_FULL_SWEEPS = 8
_MAX_SWEEPS = 400

#: Rounds of computing the L1 distance of path edges that only had a proxy, and searching again.
_REFINE_ROUNDS = 3

#: Default of :func:`order_channels`: largest ``n * n * d / 2`` (absolute differences) for which
#: the exact distance matrix is computed (about 0.4 s on two cores).
EXACT_WORK = 1e9

#: Budget (multiply-adds) of the Euclidean proxy ``n * n * columns``; wider groups sample columns.
_PROXY_WORK = 1.5e10

#: Budget (absolute differences) of the L1 distances of the candidate edges ``n * k * columns``;
#: wider groups estimate them on a seeded sample of the columns.
_CANDIDATE_WORK = 3e8

#: Values (float32) per block of the candidate-edge, path-edge and total-variation
#: computations. Few large tensor operations: with several threads, every operation waits for
#: its slowest thread, which on a busy machine makes many small ones very slow.
_BLOCK_ELEMENTS = 1 << 24


# --------------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------------


def channel_distances(slices: Sequence[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """Summed L1 distances between the channels of a group of tensors.

    Each item ``(tensor, dim)`` contributes the slices of ``tensor`` along ``dim``: channel ``i``
    of that item is ``tensor.select(dim, i)``, flattened. The distance between channels ``i``
    and ``j`` is the sum over all items of the L1 distance between their ``i``-th and ``j``-th
    slices. The computation runs in float64 on each tensor's own device, in column chunks so
    that no more than about 128 MiB of float64 copies are alive at a time; gradients are not
    tracked.

    Args:
        slices: Non-empty sequence of ``(tensor, dim)`` pairs. Every tensor must have the same
            size ``n`` along its ``dim`` (negative ``dim`` counts from the end). For instance a
            linear layer's weight of shape ``(out, in)`` with ``dim=0`` together with its bias
            ``(out,)`` with ``dim=0`` and the next layer's weight ``(next_out, out)`` with
            ``dim=1``.

    Returns:
        The ``(n, n)`` float64 CPU tensor of distances: symmetric, non-negative, zero diagonal.

    Raises:
        ShapeError: If ``slices`` is empty, a ``dim`` is out of range for its tensor, or the
            tensors disagree on the number of channels ``n``.
    """
    n, flats = _flat_slices(slices, "channel_distances")
    total = torch.zeros((n, n), dtype=torch.float64)
    if n == 0:
        return total
    chunk = max(1, _CHUNK_ELEMENTS // n)
    with torch.no_grad():
        for flat in flats:
            width = flat.shape[1]
            part = torch.zeros((n, n), dtype=torch.float64, device=flat.device)
            for start in range(0, width, chunk):
                columns = flat[:, start : start + chunk].to(torch.float64)
                # The matrix is symmetric: only row blocks against the rows from their own
                # start on are computed (half the work of one cdist of all rows).
                for row in range(0, n, _BLOCK_ROWS):
                    rows = columns[row : row + _BLOCK_ROWS]
                    part[row : row + _BLOCK_ROWS, row:] += torch.cdist(rows, columns[row:], p=1.0)
            total += part.cpu()
    upper = total.triu(1)
    return upper + upper.T


def _flat_slices(
    slices: Sequence[tuple[torch.Tensor, int]], caller: str
) -> tuple[int, list[torch.Tensor]]:
    """The number of channels ``n`` and every item as a detached ``(n, width)`` view or copy
    (items of width 0 left out), after checking the ``(tensor, dim)`` pairs."""
    items = list(slices)
    if not items:
        raise ShapeError(f"{caller} needs at least one (tensor, dim) pair, got none")
    sizes: list[int] = []
    normalised: list[tuple[torch.Tensor, int]] = []
    for index, item in enumerate(items):
        try:
            tensor, dim = item
        except (TypeError, ValueError) as exc:
            raise ShapeError(
                f"item {index} of {caller} must be a (tensor, dim) pair, got {item!r}"
            ) from exc
        if not isinstance(tensor, torch.Tensor):
            raise ShapeError(
                f"item {index} of {caller} must hold a torch.Tensor, got {type(tensor).__name__}"
            )
        ndim = tensor.dim()
        if ndim == 0 or not -ndim <= int(dim) < ndim:
            raise ShapeError(
                f"item {index}: dim {dim} is out of range for a tensor of shape "
                f"{tuple(tensor.shape)}"
            )
        dim = int(dim) % ndim
        sizes.append(int(tensor.shape[dim]))
        normalised.append((tensor, dim))
    if len(set(sizes)) != 1:
        raise ShapeError(
            "all (tensor, dim) pairs must have the same number of channels along their dim, "
            f"got sizes {sizes}"
        )
    n = sizes[0]
    flats = []
    for tensor, dim in normalised:
        width = tensor.numel() // n if n else 0
        if width:
            flats.append(tensor.detach().movedim(dim, 0).reshape(n, width))
    return n, flats


def total_variation(distances: torch.Tensor, order: Sequence[int] | torch.Tensor) -> float:
    """Cost of the open path that visits the channels in ``order``.

    Args:
        distances: ``(n, n)`` distance matrix (tensor or array-like).
        order: Channel indices, shape ``(k,)`` with entries in ``[0, n)``; usually a
            permutation of ``range(n)``.

    Returns:
        ``sum(distances[order[i], order[i + 1]] for i in range(k - 1))`` in float64 (0.0 for
        ``k <= 1``).

    Raises:
        ShapeError: If ``distances`` is not a square 2-D matrix, or ``order`` is not 1-D or
            holds indices outside ``[0, n)``.
    """
    matrix = _as_matrix(distances)
    n = matrix.shape[0]
    idx = _as_index_vector(order, n)
    if idx.size <= 1:
        return 0.0
    return float(matrix[idx[:-1], idx[1:]].sum())


# --------------------------------------------------------------------------------------------
# Open-path ordering
# --------------------------------------------------------------------------------------------


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
        solver: ``"fast-tsp"``, ``"greedy-2opt"`` or ``"auto"`` (fast-tsp when the
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
    matrix = _validated_distances(distances)
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
    eps = largest * _GAIN_RTOL

    if solver == "fast-tsp":
        module = _fast_tsp_module()
        budget = time_limit if time_limit is not None else min(max(0.05, n / 2000.0), 2.0)
        tour = _fast_tsp_tour(module, augmented, 0.8 * budget if time_limit else budget)
        tour = _polish(augmented, tour, None, eps, seed, deadline)
        if _quantisation_is_coarse(matrix):
            logger.debug("open_path_order: coarse fast-tsp quantisation, also trying greedy-2opt")
            greedy = _greedy_two_opt_tour(augmented, eps, seed, deadline)
            if _path_cost(matrix, _cut_at_dummy(greedy, n)) < _path_cost(
                matrix, _cut_at_dummy(tour, n)
            ):
                tour = greedy
    else:
        tour = _greedy_two_opt_tour(augmented, eps, seed, deadline)

    path = _cut_at_dummy(tour, n)
    path = _canonical_orientation(matrix, path)
    cost = _path_cost(matrix, path)
    identity_cost = _path_cost(matrix, identity)
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
    2. each channel gets 24 candidate neighbours from it (see :func:`open_path_order`), and the
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
    n, flats = _flat_slices(slices, "order_channels")
    with torch.no_grad():
        flats = _merged(flats)
        identity = torch.arange(n, dtype=torch.int64)
        width = sum(flat.shape[1] for flat in flats)
        before = _flats_total_variation(flats, identity)
        if not math.isfinite(before):  # a NaN or infinity in any slice makes the sum one
            raise ConversionError("order_channels: the tensors hold NaN or infinite values")
        if n <= 2 or before == 0.0:
            # Nothing to order (pitfall: all-zero distances must not make the solver loop).
            return ChannelOrder(identity, before, before, time.perf_counter() - started, 0.0)
        generator = torch.Generator().manual_seed(int(seed))
        work = n * n * width / 2
        if n <= _MULTI_START_MAX_N or work <= exact_work:
            count = max(1, int(2 * exact_work / (n * n)))
            matrix = channel_distances(
                [
                    (f, 0)
                    for f in (flats if work <= exact_work else _sample(flats, count, generator))
                ]
            )
            clock = time.perf_counter()
            distance_seconds = clock - started
            order = open_path_order(matrix, solver=solver, seed=seed, time_limit=time_limit)
            order_seconds = time.perf_counter() - clock
        else:
            setup = time.perf_counter() - started
            order, distance_seconds, order_seconds = _order_wide(
                flats, solver, int(seed), generator, time_limit
            )
            distance_seconds += setup
        clock = time.perf_counter()
        after = _flats_total_variation(flats, order)
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


def channel_total_variation(
    slices: Sequence[tuple[torch.Tensor, int]], order: Sequence[int] | torch.Tensor
) -> float:
    """Exact total variation of the channels of a group of tensors visited in ``order``.

    Equal to ``total_variation(channel_distances(slices), order)`` but computed in ``O(n * d)``
    from the tensors, without the ``(n, n)`` matrix.

    Raises:
        ShapeError: as :func:`channel_distances`, or if ``order`` is not a 1-D vector of indices
            in ``[0, n)``.
    """
    n, flats = _flat_slices(slices, "channel_total_variation")
    idx = torch.from_numpy(_as_index_vector(order, n))
    with torch.no_grad():
        return _flats_total_variation(_merged(flats), idx)


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
    matrix = _validated_distances(distances)
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


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _as_matrix(distances: Any) -> np.ndarray:
    """``distances`` as a float64 numpy array, checked to be square and 2-D."""
    if isinstance(distances, torch.Tensor):
        array = distances.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:
        try:
            array = np.asarray(distances, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"distances must be a square 2-D matrix, got {distances!r}") from exc
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ShapeError(f"distances must be a square 2-D matrix, got shape {tuple(array.shape)}")
    return array


def _validated_distances(distances: Any) -> np.ndarray:
    """Checked, symmetrised float64 copy of ``distances`` with a zero diagonal."""
    array = _as_matrix(distances)
    if array.size == 0:
        return np.zeros((0, 0), dtype=np.float64)
    if not np.isfinite(array).all():
        raise ConversionError("distances must be finite, found NaN or infinite entries")
    smallest = float(array.min())
    if smallest < 0:
        raise ConversionError(f"distances must be non-negative, found {smallest:g}")
    difference = array - array.T
    asymmetry = float(np.abs(difference, out=difference).max())
    if asymmetry > _SYMMETRY_RTOL * float(array.max()) + 1e-12:
        raise ConversionError(
            f"distances must be symmetric, found |d[i, j] - d[j, i]| up to {asymmetry:g}"
        )
    # 0.5 * (a + a.T) is exactly symmetric: float addition commutes.
    matrix = 0.5 * (array + array.T) if asymmetry > 0 else array.copy()
    np.fill_diagonal(matrix, 0.0)
    return matrix


def _as_index_vector(order: Sequence[int] | torch.Tensor, n: int) -> np.ndarray:
    """``order`` as a 1-D int64 numpy array with entries in ``[0, n)``."""
    idx = order.detach().cpu().numpy() if isinstance(order, torch.Tensor) else np.asarray(order)
    if idx.ndim != 1:
        raise ShapeError(f"order must be 1-D, got shape {tuple(idx.shape)}")
    if idx.size == 0:
        return idx.astype(np.int64)
    if not np.issubdtype(idx.dtype, np.integer):
        raise ShapeError(f"order must hold integer indices, got dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    if idx.min() < 0 or idx.max() >= n:
        raise ShapeError(f"order holds indices outside [0, {n}): min {idx.min()}, max {idx.max()}")
    return idx


_FAST_TSP_CACHE: list[ModuleType | None] = []


def _load_fast_tsp() -> ModuleType | None:
    """The ``fast_tsp`` module, or ``None`` when it cannot be imported (cached)."""
    if not _FAST_TSP_CACHE:
        try:
            import fast_tsp
        except ImportError:  # pragma: no cover - depends on the environment
            _FAST_TSP_CACHE.append(None)
        else:
            _FAST_TSP_CACHE.append(fast_tsp)
    return _FAST_TSP_CACHE[0]


def _fast_tsp_module() -> ModuleType:
    """The ``fast_tsp`` module, or a ConversionError saying how to do without it."""
    module = _load_fast_tsp()
    if module is None:
        raise ConversionError(
            "solver 'fast-tsp' needs the fast_tsp package, which cannot be imported; "
            "install it or use solver='greedy-2opt'"
        )
    return module


def _checked_solver(solver: str, seed: int, time_limit: float | None) -> str:
    """The concrete solver (``"auto"`` resolved) after checking the common arguments."""
    if solver not in SOLVERS:
        raise ConversionError(f"unknown solver {solver!r}; valid solvers are {list(SOLVERS)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConversionError(f"seed must be an integer, got {seed!r}")
    if time_limit is not None and not (
        isinstance(time_limit, int | float) and math.isfinite(time_limit) and time_limit > 0
    ):
        raise ConversionError(
            f"time_limit must be a positive finite number or None, got {time_limit!r}"
        )
    if solver == "auto":
        return "fast-tsp" if _load_fast_tsp() is not None else "greedy-2opt"
    if solver == "fast-tsp":
        _fast_tsp_module()
    return solver


# --------------------------------------------------------------------------------------------
# Paths and tours
# --------------------------------------------------------------------------------------------


def _path_cost(matrix: np.ndarray, path: np.ndarray) -> float:
    """Open-path cost of ``path`` under ``matrix``."""
    if path.size <= 1:
        return 0.0
    return float(matrix[path[:-1], path[1:]].sum())


def _cut_at_dummy(tour: np.ndarray, dummy: int) -> np.ndarray:
    """Open path of the closed ``tour`` (through cities ``0..dummy``) cut at city ``dummy``."""
    position = int(np.flatnonzero(tour == dummy)[0])
    return np.concatenate([tour[position + 1 :], tour[:position]])


def _canonical_orientation(matrix: np.ndarray, path: np.ndarray) -> np.ndarray:
    """The cheaper orientation of ``path``; on a tie, the one whose first index is smaller."""
    reverse = path[::-1].copy()
    forward_cost = _path_cost(matrix, path)
    reverse_cost = _path_cost(matrix, reverse)
    tolerance = 1e-12 * max(forward_cost, reverse_cost)
    if reverse_cost < forward_cost - tolerance:
        return reverse
    if forward_cost < reverse_cost - tolerance:
        return path
    return reverse if reverse[0] < path[0] else path


def _fast_tsp_tour(module: ModuleType, augmented: np.ndarray, budget: float) -> np.ndarray:
    """Closed tour through the ``n + 1`` cities of ``augmented`` found by fast_tsp.

    The float distances are scaled so that the largest maps to ``_FAST_TSP_MAX`` and rounded
    (fast_tsp needs integers in ``0..65535``); the caller polishes the tour on the float values.
    """
    largest = float(augmented.max())
    scale = _FAST_TSP_MAX / largest if largest > 0 else 0.0
    # `augmented` is exactly symmetric, so the rounded matrix is too.
    # Entries are non-negative, so adding 0.5 and truncating rounds them (and is fast).
    quantised = (augmented * scale + 0.5).astype(np.uint16)
    tour = module.find_tour(quantised, duration_seconds=float(budget), stop_when_converged=True)
    return np.asarray(tour, dtype=np.int64)


def _quantisation_is_coarse(matrix: np.ndarray) -> bool:
    """Whether typical short edges are only a few fast_tsp units long after scaling.

    That happens when a few outlying channels dominate the largest distance; the rounded
    problem then hardly tells short edges apart.
    """
    largest = float(matrix.max())
    masked = matrix.copy()
    np.fill_diagonal(masked, np.inf)
    typical = float(np.median(masked.min(axis=1)))
    return typical * _FAST_TSP_MAX / largest < _COARSE_UNITS


def _greedy_two_opt_tour(
    augmented: np.ndarray, eps: float, seed: int, deadline: float | None
) -> np.ndarray:
    """Closed tour through the ``n + 1`` cities of ``augmented`` (city ``n`` is the dummy):
    :func:`_multi_start_tour` up to ``_MULTI_START_MAX_N`` channels, :func:`_candidate_tour`
    above."""
    n = augmented.shape[0] - 1
    if n > _MULTI_START_MAX_N:
        neighbours = _with_dummy(_candidate_lists(augmented[:n, :n]))
        return _candidate_tour(augmented, neighbours, eps, seed, deadline)
    return _multi_start_tour(augmented, eps, seed, deadline, every_start=True)


def _multi_start_tour(
    augmented: np.ndarray, eps: float, seed: int, deadline: float | None, every_start: bool
) -> np.ndarray:
    """Greedy nearest-neighbour paths from seeded starting channels (plus the identity),
    improved by exhaustive 2-opt and Or-opt (all of them, or only the shortest when not
    ``every_start``); the best is returned as a tour starting at the dummy."""
    n = augmented.shape[0] - 1
    matrix = augmented[:n, :n]
    rng = np.random.default_rng(seed)
    starts = rng.choice(n, size=min(n, _NUM_STARTS), replace=False)
    candidates = [*_nearest_neighbour_paths(matrix, starts), np.arange(n, dtype=np.int64)]
    costs = np.array([_path_cost(matrix, path) for path in candidates])
    ranking = np.argsort(costs, kind="stable")
    searched = ranking if every_start else ranking[:1]
    best_tour: np.ndarray | None = None
    best_cost = math.inf
    for index in searched:
        tour = np.concatenate([[n], candidates[int(index)]]).astype(np.int64)
        tour = _local_search(augmented, tour, eps, deadline, _MAX_ROUNDS)
        cost = _path_cost(matrix, _cut_at_dummy(tour, n))
        if cost < best_cost - eps:
            best_tour, best_cost = tour, cost
        if deadline is not None and time.perf_counter() > deadline:
            break
    assert best_tour is not None
    return best_tour


def _nearest_neighbour_paths(matrix: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    """Greedy nearest-neighbour open paths, one from each start, built side by side.

    Ties go to the smallest index, so the construction is deterministic.
    """
    n = matrix.shape[0]
    count = len(starts)
    rows = np.arange(count)
    paths = np.empty((count, n), dtype=np.int64)
    paths[:, 0] = starts
    visited = np.zeros((count, n), dtype=bool)
    visited[rows, starts] = True
    current = np.asarray(starts, dtype=np.int64)
    for step in range(1, n):
        candidates = np.where(visited, np.inf, matrix[current])
        current = np.argmin(candidates, axis=1)
        paths[:, step] = current
        visited[rows, current] = True
    return list(paths)


# --------------------------------------------------------------------------------------------
# Local search on a closed tour (2-opt, Or-opt)
# --------------------------------------------------------------------------------------------


def _local_search(
    matrix: np.ndarray, tour: np.ndarray, eps: float, deadline: float | None, max_rounds: int
) -> np.ndarray:
    """Improve the closed ``tour`` under the symmetric ``matrix`` by 2-opt and Or-opt moves.

    Every applied move shortens the tour by more than ``eps``, and the number of passes is
    bounded, so the search always terminates. It stops early at ``deadline`` (a
    ``time.perf_counter`` value) when one is given.
    """
    tour = np.array(tour, dtype=np.int64)
    if tour.size < 4:
        return tour
    for _ in range(max_rounds):
        for _ in range(_MAX_TWO_OPT_PASSES):
            if not _two_opt_pass(matrix, tour, eps, deadline):
                break
            if _expired(deadline):
                return tour
        if not _or_opt_pass(matrix, tour, eps, deadline) or _expired(deadline):
            break
    return tour


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() > deadline


def _two_opt_pass(matrix: np.ndarray, tour: np.ndarray, eps: float, deadline: float | None) -> bool:
    """One sweep of 2-opt moves over the closed ``tour`` (modified in place).

    For each position ``i`` the gains of reversing ``tour[i + 1 : j + 1]`` are computed for all
    ``j`` at once; the best move is applied when it gains more than ``eps``.

    Returns:
        Whether some move was applied.
    """
    m = tour.size
    succ = np.roll(tour, -1)
    weights = matrix[tour, succ]
    improved = False
    for i in range(m - 2):
        if deadline is not None and time.perf_counter() > deadline:
            break
        a = tour[i]
        b = tour[i + 1]
        stop = m - 1 if i == 0 else m  # for i = 0, edge m - 1 touches edge 0
        if stop <= i + 2:
            continue
        gains = (
            weights[i]
            + weights[i + 2 : stop]
            - matrix[a, tour[i + 2 : stop]]
            - matrix[b, succ[i + 2 : stop]]
        )
        k = int(np.argmax(gains))
        if gains[k] > eps:
            j = i + 2 + k
            tour[i + 1 : j + 1] = tour[i + 1 : j + 1][::-1].copy()
            succ[:] = np.roll(tour, -1)
            weights[i : j + 1] = matrix[tour[i : j + 1], succ[i : j + 1]]
            improved = True
    return improved


def _or_opt_pass(matrix: np.ndarray, tour: np.ndarray, eps: float, deadline: float | None) -> bool:
    """One sweep of Or-opt moves over the closed ``tour`` (modified in place).

    Segments of 1, 2 and 3 consecutive cities are moved, possibly reversed, to the best other
    edge of the tour; all target edges are evaluated at once for each segment.

    Returns:
        Whether some move was applied.
    """
    m = tour.size
    improved = False
    for length in (1, 2, 3):
        if m < length + 3:
            break
        succ = np.roll(tour, -1)
        weights = matrix[tour, succ]
        for i in range(m - length + 1):
            if deadline is not None and time.perf_counter() > deadline:
                return improved
            first = tour[i]
            last = tour[i + length - 1]
            before = tour[i - 1]
            after = tour[(i + length) % m]
            removal_gain = matrix[before, first] + matrix[last, after] - matrix[before, after]
            row_first = matrix[first]
            row_last = matrix[last]
            forward = row_first[tour] + row_last[succ] - weights
            backward = row_last[tour] + row_first[succ] - weights
            blocked = np.arange(i - 1, i + length) % m
            forward[blocked] = np.inf
            backward[blocked] = np.inf
            j_forward = int(np.argmin(forward))
            j_backward = int(np.argmin(backward))
            if forward[j_forward] <= backward[j_backward]:
                j, insertion, reverse = j_forward, forward[j_forward], False
            else:
                j, insertion, reverse = j_backward, backward[j_backward], True
            if removal_gain - insertion > eps:
                segment = tour[i : i + length].copy()
                if reverse:
                    segment = segment[::-1]
                rest = np.concatenate([tour[:i], tour[i + length :]])
                at = j if j < i else j - length  # position of tour[j] in rest
                tour[:] = np.concatenate([rest[: at + 1], segment, rest[at + 1 :]])
                succ = np.roll(tour, -1)
                weights = matrix[tour, succ]
                improved = True
    return improved


# --------------------------------------------------------------------------------------------
# Candidate neighbours, greedy-edge construction and batched local search (wide groups)
# --------------------------------------------------------------------------------------------


def _candidate_lists(
    matrix: np.ndarray, near: int | None = None, centred: int | None = None
) -> np.ndarray:
    """``(n, k)`` candidate neighbours of every channel (``k = min(n - 1, near + centred)``).

    ``near`` nearest channels under ``matrix`` (diagonal ignored), then the ``centred`` nearest
    under ``matrix[i, j] - mean_i - mean_j`` (the row means taken off: a path's cost changes by
    the same amount for every path through all channels, up to its two ends, but channels close
    to everyone no longer fill every list), then further nearest ones in place of duplicates.
    """
    near = _NEAR_CANDIDATES if near is None else near
    centred = _CENTRED_CANDIDATES if centred is None else centred
    n = matrix.shape[0]
    k = min(n - 1, near + centred)
    # float32 is plenty to rank neighbours, and torch.topk is much faster than argpartition.
    masked = torch.from_numpy(np.asarray(matrix)).to(torch.float32, copy=True)
    masked.fill_diagonal_(math.inf)
    lists = [torch.topk(masked, k, dim=1, largest=False).indices.numpy()]
    if centred > 0 and k < n - 1:
        means = (np.sum(matrix, axis=1, dtype=np.float64) - np.diagonal(matrix)) / (n - 1)
        centre = torch.from_numpy(means.astype(np.float32))
        masked.sub_(centre[:, None]).sub_(centre[None, :])
        nearest = lists.pop()
        centred_nearest = torch.topk(masked, min(centred, n - 1), dim=1, largest=False).indices
        lists = [nearest[:, :near], centred_nearest.numpy(), nearest[:, near:]]
    candidates = np.concatenate(lists, axis=1)
    # First occurrences per row, in column order (a stable sort puts them first among equals).
    by_value = np.argsort(candidates, axis=1, kind="stable")
    ordered = np.take_along_axis(candidates, by_value, axis=1)
    repeat = np.zeros(candidates.shape, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    duplicate = np.empty_like(repeat)
    np.put_along_axis(duplicate, by_value, repeat, axis=1)
    keep = np.argsort(duplicate, axis=1, kind="stable")[:, :k]
    return np.ascontiguousarray(np.take_along_axis(candidates, keep, axis=1))


def _with_dummy(neighbours: np.ndarray) -> np.ndarray:
    """Candidate lists of the ``n + 1`` cities: the dummy (city ``n``) joins every channel's
    list (so that any channel can become an end of the path); its own row is never used."""
    n, k = neighbours.shape
    out = np.full((n + 1, k + 1), n, dtype=np.int64)
    out[:n, :k] = neighbours
    return out


def _candidate_tour(
    augmented: np.ndarray,
    neighbours: np.ndarray,
    eps: float,
    seed: int,
    deadline: float | None,
) -> np.ndarray:
    """Closed tour through the ``n + 1`` cities of ``augmented`` (city ``n`` is the dummy):
    the greedy-edge path over the candidate edges (or the identity, if shorter), improved by
    :func:`_batched_local_search`. Up to ``_POLISH_MAX_N`` channels, it is polished by a few
    rounds of exhaustive 2-opt / Or-opt; up to ``_SECOND_SEARCH_MAX_N``, the exhaustive search
    from the best nearest-neighbour path (:func:`_multi_start_tour`) is run as well, and the
    shorter tour kept."""
    n = augmented.shape[0] - 1
    path = _greedy_edge_path(augmented, neighbours[:n, :-1])
    identity = np.arange(n, dtype=np.int64)
    if _path_cost(augmented, identity) < _path_cost(augmented, path):
        path = identity
    tour = np.concatenate([[n], path]).astype(np.int64)
    tour = _batched_local_search(augmented, tour, neighbours, eps, seed, deadline)
    if n <= _POLISH_MAX_N and not _expired(deadline):
        tour = _local_search(augmented, tour, eps, deadline, _POLISH_ROUNDS)
    if n <= _SECOND_SEARCH_MAX_N and not _expired(deadline):
        other = _multi_start_tour(augmented, eps, seed, deadline, every_start=False)
        if (
            _path_cost(augmented, _cut_at_dummy(other, n))
            < _path_cost(augmented, _cut_at_dummy(tour, n)) - eps
        ):
            tour = other
    return tour


def _polish(
    augmented: np.ndarray,
    tour: np.ndarray,
    neighbours: np.ndarray | None,
    eps: float,
    seed: int,
    deadline: float | None,
) -> np.ndarray:
    """A few rounds of exhaustive 2-opt / Or-opt up to ``_POLISH_MAX_N`` channels; above, the
    candidate local search (whose lists are computed when ``neighbours`` is None)."""
    n = augmented.shape[0] - 1
    if n <= _POLISH_MAX_N:
        return _local_search(augmented, tour, eps, deadline, _POLISH_ROUNDS)
    if neighbours is None:
        neighbours = _with_dummy(_candidate_lists(augmented[:n, :n]))
    return _batched_local_search(augmented, tour, neighbours, eps, seed, deadline)


def _greedy_edge_path(augmented: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Open path through the ``n`` channels: the candidate edges are taken shortest first
    (ties by index) when both ends have fewer than two edges and no cycle closes; the
    fragments left are then chained, each to the fragment end nearest the current path end."""
    n, k = neighbours.shape
    first = np.repeat(np.arange(n, dtype=np.int64), k)
    second = neighbours.reshape(-1)
    keys = np.unique(np.minimum(first, second) * n + np.maximum(first, second))
    low, high = keys // n, keys % n
    weights = augmented[low, high]
    ranking = np.lexsort((high, low, weights))
    degree = [0] * n
    parent = list(range(n))
    links: list[list[int]] = [[] for _ in range(n)]

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(low[ranking].tolist(), high[ranking].tolist(), strict=True):
        if degree[a] == 2 or degree[b] == 2:
            continue
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        parent[ra] = rb
        degree[a] += 1
        degree[b] += 1
        links[a].append(b)
        links[b].append(a)

    fragments: list[list[int]] = []
    seen = [False] * n
    for start in range(n):
        if degree[start] == 2 or seen[start]:
            continue
        fragment = [start]
        previous, current = -1, start
        while True:
            following = [x for x in links[current] if x != previous]
            if not following:
                break
            previous, current = current, following[0]
            fragment.append(current)
        for node in fragment:
            seen[node] = True
        fragments.append(fragment)
    ends = np.array([[f[0], f[-1]] for f in fragments], dtype=np.int64)
    free = np.ones(len(fragments), dtype=bool)
    free[0] = False
    path = list(fragments[0])
    for _ in range(len(fragments) - 1):
        to_first = np.where(free, augmented[path[-1], ends[:, 0]], np.inf)
        to_last = np.where(free, augmented[path[-1], ends[:, 1]], np.inf)
        a, b = int(np.argmin(to_first)), int(np.argmin(to_last))
        if to_first[a] <= to_last[b]:
            path.extend(fragments[a])
            free[a] = False
        else:
            path.extend(reversed(fragments[b]))
            free[b] = False
    return np.asarray(path, dtype=np.int64)


def _batched_local_search(
    augmented: np.ndarray,
    tour: np.ndarray,
    neighbours: np.ndarray,
    eps: float,
    seed: int,
    deadline: float | None,
    active: np.ndarray | None = None,
    max_full_sweeps: int = _MAX_FULL_SWEEPS,
) -> np.ndarray:
    """Improve the closed ``tour`` by 2-opt and Or-opt moves restricted to candidate edges.

    Each sweep evaluates, with array operations, every move that adds a candidate edge at an
    *active* city (all cities at first, or those flagged in ``active``): 2-opt, and Or-opt moves
    of 1 to 3 consecutive cities (either orientation) next to a candidate neighbour. Improving
    moves that rewrite disjoint stretches of the tour are independent (and so are reversals of
    stretches that enclose other moves), so as many of them as fit are applied at once, see
    :func:`_apply_moves`. The cities they touched are the active
    ones of the next sweep; when no active city has an improving move, a sweep over all cities
    follows (at most ``max_full_sweeps`` of them, the first one included). Every sweep starts
    at a seeded random position, so that moves across the array's ends are not always missed.
    Every applied move gains more than ``eps``; the number of sweeps is bounded, and
    ``deadline`` (a ``time.perf_counter`` value) stops the search early.
    """
    tour = np.array(tour, dtype=np.int64)
    m = tour.size
    if m < 8:
        return tour
    rng = np.random.default_rng(seed)
    flat = np.ascontiguousarray(augmented).reshape(-1)
    active = np.ones(m, dtype=bool) if active is None else np.array(active, dtype=bool)
    # Or-opt tries the first candidates only (and the dummy, the last column).
    width = neighbours.shape[1] - 1
    insertion = neighbours
    if width > _INSERTION_CANDIDATES:
        insertion = np.concatenate([neighbours[:, :_INSERTION_CANDIDATES], neighbours[:, -1:]], 1)
    full_sweeps = 0
    for _ in range(_MAX_SWEEPS):
        if _expired(deadline):
            break
        full = bool(active.all())
        if full:
            if full_sweeps >= max_full_sweeps:
                break
            full_sweeps += 1
        tour = np.roll(tour, -int(rng.integers(m)))
        moves = _improving_moves(flat, tour, neighbours, insertion, active, full, eps)
        if moves is None:
            if full:
                break
            active[:] = True
            continue
        touched = _apply_moves(tour, moves)
        active[:] = False
        active[touched] = True
    return tour


def _improving_moves(
    flat: np.ndarray,
    tour: np.ndarray,
    neighbours: np.ndarray,
    insertion: np.ndarray,
    active: np.ndarray,
    full: bool,
    eps: float,
) -> tuple[np.ndarray, ...] | None:
    """The best improving move at each active city (2-opt) and at each segment of 1 to 3
    cities next to an active city (Or-opt), as arrays ``(gain, first edge, last edge, length,
    start, target, reversed)``; None when there is none. A move with edges ``[lo, hi]`` rewrites
    only tour positions ``lo + 1 .. hi`` and removes edges among ``lo .. hi`` (edge ``e`` joins
    positions ``e`` and ``e + 1``). ``length`` 0 is 2-opt (reverse positions ``start ..
    target``); ``length`` L > 0 moves the segment of L cities at ``start`` next to position
    ``target`` (between ``target`` and ``target + 1``)."""
    m = tour.size
    dummy = m - 1
    cities = np.arange(m, dtype=np.int64)
    position = np.empty(m, dtype=np.int64)
    position[tour] = cities
    succ = np.empty(m, dtype=np.int64)
    succ[tour] = np.roll(tour, -1)
    pred = np.empty(m, dtype=np.int64)
    pred[tour] = np.roll(tour, 1)
    w_succ = flat[cities * m + succ]
    w_pred = flat[cities * m + pred]
    parts: list[tuple[np.ndarray, ...]] = []

    # 2-opt: new edge (a, c) for a candidate c of an active city a, and either (succ a, succ c)
    # (reverse positions i+1..j) or (pred a, pred c) (reverse positions i..j-1), i < j.
    a = np.flatnonzero(active)
    a = a[a != dummy]
    if a.size:
        c = neighbours[a]
        col = a[:, None]
        ac = flat[col * m + c]
        forward = w_succ[col] + w_succ[c] - ac - flat[succ[col] * m + succ[c]]
        backward = w_pred[col] + w_pred[c] - ac - flat[pred[col] * m + pred[c]]
        i = position[col]
        j = position[c]
        low, high = np.minimum(i, j), np.maximum(i, j)
        use_forward = forward >= backward
        gain = np.where(use_forward, forward, backward)
        best = np.argmax(gain, axis=1)
        rows = np.arange(a.size)
        gain = gain[rows, best]
        pick = use_forward[rows, best]
        left = np.where(pick, low[rows, best] + 1, low[rows, best])
        right = np.where(pick, high[rows, best], high[rows, best] - 1)
        # Reversing positions 0..r is reversing the rest of the closed tour, r+1..m-1.
        wraps = left == 0
        left, right = np.where(wraps, right + 1, left), np.where(wraps, m - 1, right)
        ok = (gain > eps) & (left < right)
        if ok.any():
            count = int(ok.sum())
            parts.append(
                (
                    gain[ok],
                    left[ok] - 1,
                    right[ok],
                    np.zeros(count, dtype=np.int64),
                    left[ok],
                    right[ok],
                    np.zeros(count, dtype=bool),
                )
            )

    # Or-opt: the segment at positions s..s+L-1 (1 <= s, s+L <= m-1) moves between x and
    # succ x, where x or succ x is a candidate of the segment's end that becomes adjacent.
    around = position[np.flatnonzero(active)]
    for length in (1, 2, 3):
        if full:
            starts = np.arange(1, m - length, dtype=np.int64)
        else:
            starts = np.unique((around[:, None] + np.arange(-length, 2)[None, :]).reshape(-1))
            starts = starts[(starts >= 1) & (starts <= m - 1 - length)]
        if starts.size == 0:
            continue
        first = tour[starts]
        last = tour[starts + length - 1]
        before = tour[starts - 1]
        after = tour[starts + length]
        removal = flat[before * m + first] + flat[last * m + after] - flat[before * m + after]
        f = first[:, None]
        lst = last[:, None]
        cf = insertion[first]
        options_x = [cf, pred[cf]]
        options_cost = [
            flat[cf * m + f] + flat[lst * m + succ[cf]] - w_succ[cf],  # cf, first..last, succ
            flat[pred[cf] * m + lst] + flat[f * m + cf] - w_pred[cf],  # pred, last..first, cf
        ]
        options_reversed = [False, True]
        if length > 1:
            cl = insertion[last]
            options_x += [cl, pred[cl]]
            options_cost += [
                flat[cl * m + lst] + flat[f * m + succ[cl]] - w_succ[cl],  # cl, last..first
                flat[pred[cl] * m + f] + flat[lst * m + cl] - w_pred[cl],  # pred, first..cl
            ]
            options_reversed += [True, False]
        x = np.concatenate(options_x, axis=1)
        gain = removal[:, None] - np.concatenate(options_cost, axis=1)
        target = position[x]
        s = starts[:, None]
        gain[(target >= s - 1) & (target <= s + length - 1)] = -np.inf
        best = np.argmax(gain, axis=1)
        rows = np.arange(starts.size)
        gain = gain[rows, best]
        ok = gain > eps
        if not ok.any():
            continue
        width = cf.shape[1]
        flipped = np.repeat(np.asarray(options_reversed), width)[best]
        start = starts[ok]
        target = target[rows, best][ok]
        later = target > start
        parts.append(
            (
                gain[ok],
                np.where(later, start - 1, target),
                np.where(later, target, start + length - 1),
                np.full(start.size, length, dtype=np.int64),
                start,
                target,
                flipped[ok],
            )
        )
    if not parts:
        return None
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _apply_moves(tour: np.ndarray, moves: tuple[np.ndarray, ...]) -> np.ndarray:
    """Apply many improving moves to ``tour`` in place; returns the cities whose edges changed.

    Moves are taken shortest edge range first (then largest gain). A move is applied when no
    edge it removes or rewrites belongs to an applied move, except that a 2-opt move may
    enclose applied moves lying strictly inside its reversed stretch: a reversal keeps the
    adjacencies inside it, so the inner moves keep their gains and the outer one (whose ends
    they do not touch) keeps its own. Moves act on the current tour, inner ones first.
    """
    gain, low, high, length, start, target, flipped = moves
    ranking = np.lexsort((-gain, high - low))
    old = tour.copy()
    m = tour.size
    covered = np.zeros(m, dtype=bool)  # edges removed or rewritten by an applied move
    touched: list[int] = []
    low_l, high_l, length_l = low.tolist(), high.tolist(), length.tolist()
    start_l, target_l, flipped_l = start.tolist(), target.tolist(), flipped.tolist()
    for k in ranking.tolist():
        lo, hi = low_l[k], high_l[k]
        size, s, t = length_l[k], start_l[k], target_l[k]
        if size == 0:
            if covered[lo] or covered[hi]:
                continue
            covered[lo : hi + 1] = True
            tour[s : t + 1] = tour[s : t + 1][::-1].copy()
            touched += (s - 1, s, t, (t + 1) % m)
            continue
        if covered[lo : hi + 1].any():
            continue
        covered[lo : hi + 1] = True
        segment = tour[s : s + size].copy()
        if flipped_l[k]:
            segment = segment[::-1]
        if t > s:
            tour[s : t - size + 1] = tour[s + size : t + 1].copy()
            tour[t - size + 1 : t + 1] = segment
        else:
            tour[t + 1 + size : s + size] = tour[t + 1 : s].copy()
            tour[t + 1 : t + 1 + size] = segment
        touched += (s - 1, s, s + size - 1, s + size, t, (t + 1) % m)
    return old[np.asarray(touched, dtype=np.int64)]


# --------------------------------------------------------------------------------------------
# Distances of wide groups: proxy matrix, candidate edges, path edges
# --------------------------------------------------------------------------------------------


def _merged(flats: list[torch.Tensor]) -> list[torch.Tensor]:
    """The items with runs of small ones (same device and dtype, under ``_BLOCK_ELEMENTS / 16``
    values each) concatenated into blocks of at most ``_BLOCK_ELEMENTS`` values: groups often
    hold dozens of small slices (attention heads, biases, normalisation weights), and few large
    tensor operations are much faster than many small ones."""
    out: list[torch.Tensor] = []
    run: list[torch.Tensor] = []
    size = 0

    def flush() -> None:
        if run:
            out.append(run[0] if len(run) == 1 else torch.cat(run, dim=1))
        run.clear()

    for flat in flats:
        if flat.numel() * 16 > _BLOCK_ELEMENTS:  # large enough on its own
            flush()
            size = 0
            out.append(flat)
            continue
        if run and (
            size + flat.numel() > _BLOCK_ELEMENTS
            or flat.device != run[0].device
            or flat.dtype != run[0].dtype
        ):
            flush()
            size = 0
        run.append(flat)
        size += flat.numel()
    flush()
    return out


def _flats_total_variation(flats: list[torch.Tensor], order: torch.Tensor) -> float:
    """Exact ``sum_k |x[order[k + 1]] - x[order[k]]|_1`` over all ``(n, width)`` items, in row
    blocks of at most ``_BLOCK_ELEMENTS`` values (each summed by torch in the tensors' precision,
    the blocks in float64)."""
    total = 0.0
    n = int(order.numel())
    if n <= 1:
        return 0.0
    identity = bool(torch.equal(order, torch.arange(n, dtype=order.dtype)))
    on_device: dict[torch.device, torch.Tensor] = {}
    for flat in flats:
        index = on_device.setdefault(flat.device, order.to(flat.device))
        step = max(1, _BLOCK_ELEMENTS // flat.shape[1])
        for row in range(0, n - 1, step):
            block = flat[row : row + step + 1] if identity else flat[index[row : row + step + 1]]
            # (a cascade sum: torch.dist(p=1) accumulates float32 naively, 0.5 % off at 2**24)
            total += float((block[1:] - block[:-1]).abs_().sum())
    return total


def _sample(
    flats: list[torch.Tensor], count: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """``count`` columns drawn without replacement (seeded) from all items together, each
    scaled by (columns in all / count): summed L1 distances over them estimate the full ones
    without bias."""
    widths = [flat.shape[1] for flat in flats]
    total = sum(widths)
    if count >= total:
        return flats
    chosen = torch.randperm(total, generator=generator)[:count].sort().values
    ends = torch.tensor(widths, dtype=torch.int64).cumsum(0)
    bounds = torch.searchsorted(chosen, ends).tolist()
    out = []
    begin, offset = 0, 0
    for flat, width, end in zip(flats, widths, bounds, strict=True):
        if end > begin:
            local = chosen[begin:end] - offset
            out.append(flat[:, local.to(flat.device)] * (total / count))
        begin, offset = end, offset + width
    return out


def _order_wide(
    flats: list[torch.Tensor],
    solver: str,
    seed: int,
    generator: torch.Generator,
    time_limit: float | None,
) -> tuple[torch.Tensor, float, float]:
    """Order a wide group without its exact distance matrix (see :func:`order_channels`).

    Returns the order and the seconds spent on distances and in the solver.
    """
    started = time.perf_counter()
    n = flats[0].shape[0]
    proxy = _euclidean_proxy(_sample(flats, max(64, int(_PROXY_WORK / (n * n))), generator))
    neighbours = _candidate_lists(proxy)
    k = neighbours.shape[1]
    pair_flats = _sample(flats, max(64, int(_CANDIDATE_WORK / (n * k))), generator)
    exact = _row_pair_distances(pair_flats, neighbours)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    columns = neighbours.reshape(-1)
    values = exact.reshape(-1)
    proxy_sum = float(proxy[rows, columns].sum(dtype=np.float64))
    scale = float(values.sum()) / proxy_sum if proxy_sum > 0 else 1.0
    largest = max(float(proxy.max()) * scale, float(values.max()))
    augmented = np.zeros((n + 1, n + 1), dtype=np.float64)
    np.multiply(proxy, scale, out=augmented[:n, :n])
    del proxy
    augmented[rows, columns] = values
    augmented[columns, rows] = values
    np.fill_diagonal(augmented, 0.0)
    refined = np.zeros(0, dtype=np.int64)  # keys a * n + b (a < b) of path edges computed later

    def known(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        listed = (neighbours[a] == b[:, None]).any(axis=1) | (neighbours[b] == a[:, None]).any(1)
        return listed | np.isin(np.minimum(a, b) * n + np.maximum(a, b), refined)

    distance_seconds = time.perf_counter() - started

    clock = time.perf_counter()
    deadline = clock + time_limit if time_limit is not None else None
    eps = largest * _GAIN_RTOL
    with_dummy = _with_dummy(neighbours)
    if solver == "fast-tsp":
        budget = time_limit if time_limit is not None else min(max(0.05, n / 2000.0), 2.0)
        tour = _fast_tsp_tour(_fast_tsp_module(), augmented, 0.8 * budget if time_limit else budget)
        tour = _batched_local_search(augmented, tour, with_dummy, eps, seed, deadline)
    else:
        tour = _candidate_tour(augmented, with_dummy, eps, seed, deadline)
    order_seconds = time.perf_counter() - clock

    # Path edges that only had a proxy: compute them and search again around them.
    for _ in range(_REFINE_ROUNDS):
        path = _cut_at_dummy(tour, n)
        first, second = path[:-1], path[1:]
        unknown = ~known(first, second)
        if not unknown.any():
            break
        clock = time.perf_counter()
        first, second = first[unknown], second[unknown]
        values = _pair_distances(pair_flats, first, second)
        augmented[first, second] = values
        augmented[second, first] = values
        refined = np.concatenate(
            [refined, np.minimum(first, second) * n + np.maximum(first, second)]
        )
        distance_seconds += time.perf_counter() - clock
        clock = time.perf_counter()
        active = np.zeros(n + 1, dtype=bool)
        active[first] = True
        active[second] = True
        tour = _batched_local_search(
            augmented, tour, with_dummy, eps, seed, deadline, active, max_full_sweeps=0
        )
        order_seconds += time.perf_counter() - clock
    path = _canonical_orientation(augmented, _cut_at_dummy(tour, n))
    return (
        torch.from_numpy(np.ascontiguousarray(path, dtype=np.int64)),
        distance_seconds,
        order_seconds,
    )


def _euclidean_proxy(flats: list[torch.Tensor]) -> np.ndarray:
    """``(n, n)`` float32 proxy of the L1 distances between the rows of all items together:
    Euclidean distances after dividing every column by the square root of its standard
    deviation (a column's share of the squared distance then grows with its spread, as its
    share of an L1 distance does, instead of with its square), from one matrix product per item
    (``|x|^2 + |y|^2 - 2 x.y``, clipped at 0). Scaling a channel scales both distances alike."""
    n = flats[0].shape[0]
    gram = torch.zeros((n, n), dtype=torch.float32)
    norms = torch.zeros(n, dtype=torch.float32)
    for flat in flats:
        x = flat.to(torch.float32)
        spread = x.std(dim=0) if n > 1 else torch.ones(x.shape[1], device=x.device)
        x = x * torch.where(spread > 0, spread.rsqrt(), torch.zeros_like(spread))
        gram += (x @ x.T).cpu()
        norms += (x * x).sum(dim=1).cpu()
    squared = gram.mul_(-2.0).add_(norms[:, None]).add_(norms[None, :]).clamp_(min=0.0)
    return squared.sqrt_().numpy()


def _row_pair_distances(flats: list[torch.Tensor], neighbours: np.ndarray) -> np.ndarray:
    """``(n, k)`` float64 L1 distances between every channel and its ``k`` candidates, one
    candidate column at a time (a gather of ``n`` whole rows, then in-place differences)."""
    n, k = neighbours.shape
    out = torch.zeros((n, k), dtype=torch.float64)
    index = torch.from_numpy(np.ascontiguousarray(neighbours.T))
    for flat in flats:
        x = flat.to(torch.float32)
        columns = index.to(x.device)
        step = max(1, _BLOCK_ELEMENTS // max(1, x.shape[1]))
        for row in range(0, n, step):
            rows = x[row : row + step]
            for j in range(k):
                block = x.index_select(0, columns[j, row : row + step]).sub_(rows).abs_()
                # float32 sums (pairwise in torch) are accurate to ~1e-7 here: enough to rank.
                out[row : row + step, j] += block.sum(dim=1).cpu()
    return out.numpy()


def _pair_distances(flats: list[torch.Tensor], first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """float64 L1 distances between channels ``first[i]`` and ``second[i]``."""
    out = torch.zeros(first.size, dtype=torch.float64)
    a, b = torch.from_numpy(first), torch.from_numpy(second)
    for flat in flats:
        step = max(1, _BLOCK_ELEMENTS // flat.shape[1])
        ia, ib = a.to(flat.device), b.to(flat.device)
        for row in range(0, first.size, step):
            diff = flat[ia[row : row + step]] - flat[ib[row : row + step]]
            out[row : row + step] += diff.abs().sum(dim=1, dtype=torch.float64).cpu()
    return out.numpy()
