"""Order solvers: a registry of named searches for a short closed tour through the channels.

A solver receives a :class:`TourProblem`: the ``n`` channels and a dummy city at distance 0 from
all of them; :func:`inn.permute.open_path_order` cuts the tour it returns at the dummy into an
open path (a channel order). Built-in entries:

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

``"auto"`` is not an entry: :func:`resolve_solver` turns it into ``"fast-tsp"`` when the
``fast_tsp`` package can be imported, else ``"greedy-2opt"``.

Example:
    >>> @inn.permute.register_solver("identity")
    ... def identity(problem):
    ...     return np.arange(problem.distances.shape[0])
    >>> inn.permute.open_path_order(distances, solver="identity")
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from inn.errors import ConversionError
from inn.permute.candidates import (
    batched_local_search,
    candidate_lists,
    greedy_edge_path,
    with_dummy,
)
from inn.permute.tours import (
    cut_at_dummy,
    expired,
    local_search,
    multi_start_tour,
    path_cost,
)

__all__ = ["SOLVERS", "Solver", "TourProblem", "register_solver", "resolve_solver"]

logger = logging.getLogger(__name__)

#: Largest integer distance handed to fast_tsp (its matrices must fit in uint16: 0..65535).
_FAST_TSP_MAX = 65000

#: Below this many fast_tsp units for a typical nearest-neighbour distance, the quantised
#: problem is deemed too coarse and greedy-2opt runs as well (the better path is kept).
_COARSE_UNITS = 200.0

#: Moves must gain more than this fraction of the largest distance to be applied.
GAIN_RTOL = 1e-10

#: Rounds of the exhaustive polish (after fast_tsp, or after the candidate search).
_POLISH_ROUNDS = 2

#: Up to this many channels, "greedy-2opt" runs the exhaustive multi-start search (cheap there).
MULTI_START_MAX_N = 64

#: Up to this many channels, the candidate search is followed by the exhaustive polish, and up
#: to the second number, the exhaustive search from the best nearest-neighbour path runs too.
_POLISH_MAX_N = 1024
_SECOND_SEARCH_MAX_N = 384


@dataclass(frozen=True)
class TourProblem:
    """What a solver is asked: a short closed tour through ``n`` channels and a dummy city.

    Attributes:
        distances: ``(n + 1, n + 1)`` float64, symmetric, non-negative, zero diagonal; city
            ``n`` is the dummy, at distance 0 from every channel. Not to be modified.
        seed: seed of any randomness (use a local generator, never the global ones).
        min_gain: a move must shorten the tour by more than this to be applied.
        time_limit: wall-clock budget of the search in seconds, or ``None`` (no budget).
        deadline: the ``time.perf_counter()`` value at which to stop, or ``None``.
        candidates: ``(n + 1, k + 1)`` int64 candidate neighbours of every city (the dummy last
            in every row) when ``distances`` are exact only on candidate edges and a cheap proxy
            elsewhere (wide groups): the search should then only add candidate edges. ``None``
            when every distance is exact.
    """

    distances: np.ndarray
    seed: int
    min_gain: float
    time_limit: float | None = None
    deadline: float | None = None
    candidates: np.ndarray | None = None


#: A solver maps a :class:`TourProblem` to a closed tour: an int64 array of shape ``(n + 1,)``
#: holding a permutation of ``range(n + 1)``.
Solver = Callable[[TourProblem], np.ndarray]

#: Registered solvers by name (see :func:`register_solver`).
SOLVERS: dict[str, Solver] = {}

_AUTO = "auto"


def register_solver(name: str) -> Callable[[Solver], Solver]:
    """Register a solver under ``name`` (a decorator); an existing entry of that name is replaced.

    Raises:
        ConversionError: if ``name`` is not a non-empty string or is ``"auto"`` (reserved).
    """
    if not isinstance(name, str) or not name or name == _AUTO:
        raise ConversionError(
            f"a solver name must be a non-empty string other than 'auto', got {name!r}"
        )

    def register(solver: Solver) -> Solver:
        SOLVERS[name] = solver
        return solver

    return register


def resolve_solver(name: str) -> str:
    """The registered solver that ``name`` stands for (``"auto"`` resolved).

    Raises:
        ConversionError: if ``name`` is neither ``"auto"`` nor registered, or names
            ``"fast-tsp"`` while the ``fast_tsp`` package cannot be imported.
    """
    if name != _AUTO and name not in SOLVERS:
        raise ConversionError(f"unknown solver {name!r}; valid solvers are {[_AUTO, *SOLVERS]}")
    if name == _AUTO:
        return "fast-tsp" if _load_fast_tsp() is not None else "greedy-2opt"
    if name == "fast-tsp":
        _fast_tsp_module()
    return name


@register_solver("fast-tsp")
def fast_tsp_solver(problem: TourProblem) -> np.ndarray:
    """fast_tsp on the quantised distances, then a deterministic polish on the float ones
    (and greedy-2opt as well when the quantisation is too coarse to tell short edges apart)."""
    augmented, n = problem.distances, problem.distances.shape[0] - 1
    module = _fast_tsp_module()
    time_limit = problem.time_limit
    budget = time_limit if time_limit is not None else min(max(0.05, n / 2000.0), 2.0)
    tour = _fast_tsp_tour(module, augmented, 0.8 * budget if time_limit else budget)
    eps, seed, deadline = problem.min_gain, problem.seed, problem.deadline
    if problem.candidates is not None:
        return batched_local_search(augmented, tour, problem.candidates, eps, seed, deadline)
    tour = _polish(augmented, tour, None, eps, seed, deadline)
    matrix = augmented[:n, :n]
    if _quantisation_is_coarse(matrix):
        logger.debug("open_path_order: coarse fast-tsp quantisation, also trying greedy-2opt")
        greedy = _greedy_two_opt_tour(augmented, eps, seed, deadline)
        if path_cost(matrix, cut_at_dummy(greedy, n)) < path_cost(
            matrix, cut_at_dummy(tour, n)
        ):
            tour = greedy
    return tour


@register_solver("greedy-2opt")
def greedy_two_opt_solver(problem: TourProblem) -> np.ndarray:
    """Greedy constructions improved by 2-opt and Or-opt moves (see the module docstring)."""
    augmented, eps = problem.distances, problem.min_gain
    if problem.candidates is not None:
        return _candidate_tour(augmented, problem.candidates, eps, problem.seed, problem.deadline)
    return _greedy_two_opt_tour(augmented, eps, problem.seed, problem.deadline)


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
    :func:`multi_start_tour` up to ``MULTI_START_MAX_N`` channels, :func:`_candidate_tour`
    above."""
    n = augmented.shape[0] - 1
    if n > MULTI_START_MAX_N:
        neighbours = with_dummy(candidate_lists(augmented[:n, :n]))
        return _candidate_tour(augmented, neighbours, eps, seed, deadline)
    return multi_start_tour(augmented, eps, seed, deadline, every_start=True)


def _candidate_tour(
    augmented: np.ndarray,
    neighbours: np.ndarray,
    eps: float,
    seed: int,
    deadline: float | None,
) -> np.ndarray:
    """Closed tour through the ``n + 1`` cities of ``augmented`` (city ``n`` is the dummy):
    the greedy-edge path over the candidate edges (or the identity, if shorter), improved by
    :func:`batched_local_search`. Up to ``_POLISH_MAX_N`` channels, it is polished by a few
    rounds of exhaustive 2-opt / Or-opt; up to ``_SECOND_SEARCH_MAX_N``, the exhaustive search
    from the best nearest-neighbour path (:func:`multi_start_tour`) is run as well, and the
    shorter tour kept."""
    n = augmented.shape[0] - 1
    path = greedy_edge_path(augmented, neighbours[:n, :-1])
    identity = np.arange(n, dtype=np.int64)
    if path_cost(augmented, identity) < path_cost(augmented, path):
        path = identity
    tour = np.concatenate([[n], path]).astype(np.int64)
    tour = batched_local_search(augmented, tour, neighbours, eps, seed, deadline)
    if n <= _POLISH_MAX_N and not expired(deadline):
        tour = local_search(augmented, tour, eps, deadline, _POLISH_ROUNDS)
    if n <= _SECOND_SEARCH_MAX_N and not expired(deadline):
        other = multi_start_tour(augmented, eps, seed, deadline, every_start=False)
        if (
            path_cost(augmented, cut_at_dummy(other, n))
            < path_cost(augmented, cut_at_dummy(tour, n)) - eps
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
        return local_search(augmented, tour, eps, deadline, _POLISH_ROUNDS)
    if neighbours is None:
        neighbours = with_dummy(candidate_lists(augmented[:n, :n]))
    return batched_local_search(augmented, tour, neighbours, eps, seed, deadline)
