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

* ``"fast-tsp"``: the `fast_tsp` package (exact for ``n <= 19`` channels, a local search with a
  time budget above that), followed by a short deterministic polish on the unquantised
  distances;
* ``"greedy-2opt"``: a self-contained fallback: greedy nearest-neighbour paths from several
  seeded starting channels, improved by vectorised 2-opt and Or-opt moves until a local optimum
  (or a bounded number of passes) is reached.

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
from typing import Any

import numpy as np
import torch

from inn.errors import ConversionError, ShapeError

__all__ = [
    "SOLVERS",
    "brute_force_order",
    "channel_distances",
    "open_path_order",
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
_BLOCK_ROWS = 128

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

#: Rounds of the polish that follows fast_tsp (its tour is already close to a local optimum).
_POLISH_ROUNDS = 3

#: Number of seeded starting channels of the greedy nearest-neighbour construction.
_NUM_STARTS = 8

#: Up to this many channels, the local search is run from every greedy start (cheap there).
_MULTI_START_MAX_N = 64


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
    items = list(slices)
    if not items:
        raise ShapeError("channel_distances needs at least one (tensor, dim) pair, got none")
    sizes: list[int] = []
    normalised: list[tuple[torch.Tensor, int]] = []
    for index, item in enumerate(items):
        try:
            tensor, dim = item
        except (TypeError, ValueError) as exc:
            raise ShapeError(
                f"item {index} of channel_distances must be a (tensor, dim) pair, got {item!r}"
            ) from exc
        if not isinstance(tensor, torch.Tensor):
            raise ShapeError(
                f"item {index} of channel_distances must hold a torch.Tensor, "
                f"got {type(tensor).__name__}"
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
    total = torch.zeros((n, n), dtype=torch.float64)
    if n == 0:
        return total
    chunk = max(1, _CHUNK_ELEMENTS // n)
    with torch.no_grad():
        for tensor, dim in normalised:
            width = tensor.numel() // n
            if width == 0:
                continue
            flat = tensor.detach().movedim(dim, 0).reshape(n, width)
            part = torch.zeros((n, n), dtype=torch.float64, device=tensor.device)
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
        seed: Seed of the starting channels of ``"greedy-2opt"``.
        time_limit: Approximate wall-clock budget in seconds for the search. ``None`` lets
            fast-tsp use ``min(max(0.05, n / 2000), 2.0)`` seconds and lets greedy-2opt run
            until a local optimum or its bounded number of passes. Fixed ``O(n^2)`` work
            (input checks, quantisation, the greedy construction) is not cut short by it.

    Returns:
        int64 CPU tensor of shape ``(n,)``: a permutation of ``range(n)``.

    Raises:
        ShapeError: If ``distances`` is not a square 2-D matrix.
        ConversionError: If ``distances`` has non-finite or negative entries or is not
            symmetric, if ``solver`` is unknown (or ``"fast-tsp"`` is not installed), or if
            ``time_limit`` is not a positive number.
    """
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
    if solver == "auto":
        solver = "fast-tsp" if _load_fast_tsp() is not None else "greedy-2opt"
    augmented = np.zeros((n + 1, n + 1), dtype=np.float64)
    augmented[:n, :n] = matrix
    eps = largest * _GAIN_RTOL

    if solver == "fast-tsp":
        module = _load_fast_tsp()
        if module is None:
            raise ConversionError(
                "solver 'fast-tsp' needs the fast_tsp package, which cannot be imported; "
                "install it or use solver='greedy-2opt'"
            )
        budget = time_limit if time_limit is not None else min(max(0.05, n / 2000.0), 2.0)
        tour = _fast_tsp_tour(module, augmented, 0.8 * budget if time_limit else budget)
        deadline = started + time_limit if time_limit is not None else None
        tour = _local_search(augmented, tour, eps, deadline, _POLISH_ROUNDS)
        if _quantisation_is_coarse(matrix):
            logger.debug("open_path_order: coarse fast-tsp quantisation, also trying greedy-2opt")
            greedy = _greedy_two_opt_tour(augmented, eps, seed, deadline)
            if _path_cost(matrix, _cut_at_dummy(greedy, n)) < _path_cost(
                matrix, _cut_at_dummy(tour, n)
            ):
                tour = greedy
    else:
        deadline = started + time_limit if time_limit is not None else None
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
    """Closed tour through the ``n + 1`` cities of ``augmented`` (city ``n`` is the dummy).

    Greedy nearest-neighbour paths from seeded starting channels (plus the identity) are
    improved by 2-opt and Or-opt; the best result is returned as a tour starting at the dummy.
    """
    n = augmented.shape[0] - 1
    matrix = augmented[:n, :n]
    rng = np.random.default_rng(seed)
    starts = rng.choice(n, size=min(n, _NUM_STARTS), replace=False)
    candidates = [*_nearest_neighbour_paths(matrix, starts), np.arange(n, dtype=np.int64)]
    costs = np.array([_path_cost(matrix, path) for path in candidates])
    ranking = np.argsort(costs, kind="stable")
    searched = ranking if n <= _MULTI_START_MAX_N else ranking[:1]
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
