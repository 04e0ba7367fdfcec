"""Candidate neighbours, the greedy-edge construction and the batched local search that only
adds candidate edges (for groups of many channels, where exhaustive moves cost ``O(n^2)``).

Tours are as in :mod:`inn.permute.tours`: permutations of ``n`` channels and a dummy city ``n``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from inn.permute.tours import expired

#: Candidate neighbours per channel: the nearest ones, and the nearest after centring.
_NEAR_CANDIDATES = 12
_CENTRED_CANDIDATES = 12

#: Or-opt moves try the first this many candidates of a segment end (2-opt tries them all).
_INSERTION_CANDIDATES = 16

#: Sweeps of the candidate local search: at most this many over all channels, and in all.
_MAX_FULL_SWEEPS = 8
_MAX_SWEEPS = 400


def candidate_lists(
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


def with_dummy(neighbours: np.ndarray) -> np.ndarray:
    """Candidate lists of the ``n + 1`` cities: the dummy (city ``n``) joins every channel's
    list (so that any channel can become an end of the path); its own row is never used."""
    n, k = neighbours.shape
    out = np.full((n + 1, k + 1), n, dtype=np.int64)
    out[:n, :k] = neighbours
    return out


def greedy_edge_path(augmented: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
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


def batched_local_search(
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
        if expired(deadline):
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
