"""Closed tours through the channels and a dummy city: costs, cutting into an open path, the
greedy nearest-neighbour construction and the exhaustive 2-opt / Or-opt local search.

A tour is an int64 array holding a permutation of the ``n + 1`` cities of an augmented
``(n + 1, n + 1)`` distance matrix whose last city (``n``) is a dummy at distance 0 from every
channel; cut at the dummy, it is an open path through the ``n`` channels.
"""

from __future__ import annotations

import math
import time

import numpy as np

#: Rounds of (2-opt passes, Or-opt pass) of the local search, and 2-opt passes per round.
_MAX_ROUNDS = 12
_MAX_TWO_OPT_PASSES = 30

#: Number of seeded starting channels of the greedy nearest-neighbour construction.
_NUM_STARTS = 8


def path_cost(matrix: np.ndarray, path: np.ndarray) -> float:
    """Open-path cost of ``path`` under ``matrix``."""
    if path.size <= 1:
        return 0.0
    return float(matrix[path[:-1], path[1:]].sum())


def cut_at_dummy(tour: np.ndarray, dummy: int) -> np.ndarray:
    """Open path of the closed ``tour`` (through cities ``0..dummy``) cut at city ``dummy``."""
    position = int(np.flatnonzero(tour == dummy)[0])
    return np.concatenate([tour[position + 1 :], tour[:position]])


def canonical_orientation(matrix: np.ndarray, path: np.ndarray) -> np.ndarray:
    """The cheaper orientation of ``path``; on a tie, the one whose first index is smaller."""
    reverse = path[::-1].copy()
    forward_cost = path_cost(matrix, path)
    reverse_cost = path_cost(matrix, reverse)
    tolerance = 1e-12 * max(forward_cost, reverse_cost)
    if reverse_cost < forward_cost - tolerance:
        return reverse
    if forward_cost < reverse_cost - tolerance:
        return path
    return reverse if reverse[0] < path[0] else path


def multi_start_tour(
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
    costs = np.array([path_cost(matrix, path) for path in candidates])
    ranking = np.argsort(costs, kind="stable")
    searched = ranking if every_start else ranking[:1]
    best_tour: np.ndarray | None = None
    best_cost = math.inf
    for index in searched:
        tour = np.concatenate([[n], candidates[int(index)]]).astype(np.int64)
        tour = local_search(augmented, tour, eps, deadline, _MAX_ROUNDS)
        cost = path_cost(matrix, cut_at_dummy(tour, n))
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


def local_search(
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
            if expired(deadline):
                return tour
        if not _or_opt_pass(matrix, tour, eps, deadline) or expired(deadline):
            break
    return tour


def expired(deadline: float | None) -> bool:
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
