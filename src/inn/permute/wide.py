"""Ordering a wide group without its exact ``(n, n)`` distance matrix.

For groups of thousands of channels the exact L1 matrix costs seconds, so
:func:`inn.permute.order_channels` orders them from a Euclidean proxy of the full matrix, the
L1 distances of candidate edges and, once a path is found, of its edges (see its docstring).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from inn.permute.candidates import batched_local_search, candidate_lists, with_dummy
from inn.permute.distances import BLOCK_ELEMENTS, sample_rows
from inn.permute.solvers import GAIN_RTOL, SOLVERS, TourProblem
from inn.permute.tours import canonical_orientation, cut_at_dummy

#: Budget (multiply-adds) of the Euclidean proxy ``n * n * columns``; wider groups sample columns.
_PROXY_WORK = 1.5e10

#: Budget (absolute differences) of the L1 distances of the candidate edges ``n * k * columns``;
#: wider groups estimate them on a seeded sample of the columns.
_CANDIDATE_WORK = 3e8

#: Rounds of computing the L1 distance of path edges that only had a proxy, and searching again.
_REFINE_ROUNDS = 3


def order_wide(
    flats: list[torch.Tensor],
    solver: str,
    seed: int,
    generator: torch.Generator,
    time_limit: float | None,
) -> tuple[torch.Tensor, float, float]:
    """Order a wide group without its exact distance matrix (see the module docstring).

    Args:
        flats: the group's ``(n, width)`` items (see :func:`inn.permute.distances.flat_slices`).
        solver: a registered solver (``"auto"`` already resolved).
        seed: seed of the solver; ``generator`` draws the column samples.
        time_limit: approximate budget in seconds of the solver.

    Returns:
        The int64 order of shape ``(n,)`` and the seconds spent on distances and in the solver.
    """
    started = time.perf_counter()
    n = flats[0].shape[0]
    proxy = _euclidean_proxy(sample_rows(flats, max(64, int(_PROXY_WORK / (n * n))), generator))
    neighbours = candidate_lists(proxy)
    k = neighbours.shape[1]
    pair_flats = sample_rows(flats, max(64, int(_CANDIDATE_WORK / (n * k))), generator)
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
    eps = largest * GAIN_RTOL
    neighbours_with_dummy = with_dummy(neighbours)
    problem = TourProblem(augmented, seed, eps, time_limit, deadline, candidates=neighbours_with_dummy)
    tour = SOLVERS[solver](problem)
    order_seconds = time.perf_counter() - clock

    # Path edges that only had a proxy: compute them and search again around them.
    for _ in range(_REFINE_ROUNDS):
        path = cut_at_dummy(tour, n)
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
        tour = batched_local_search(
            augmented, tour, neighbours_with_dummy, eps, seed, deadline, active, max_full_sweeps=0
        )
        order_seconds += time.perf_counter() - clock
    path = canonical_orientation(augmented, cut_at_dummy(tour, n))
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
        step = max(1, BLOCK_ELEMENTS // max(1, x.shape[1]))
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
        step = max(1, BLOCK_ELEMENTS // flat.shape[1])
        ia, ib = a.to(flat.device), b.to(flat.device)
        for row in range(0, first.size, step):
            diff = flat[ia[row : row + step]] - flat[ib[row : row + step]]
            out[row : row + step] += diff.abs().sum(dim=1, dtype=torch.float64).cpu()
    return out.numpy()
