"""Distances between the channels of a group of tensors, and the total variation of an order.

The distance between channels ``i`` and ``j`` is the L1 distance between their slices of all
member tensors of the group; the total variation of an order ``pi`` is the length of the open
path that visits the channels in that order, ``sum_k d(pi[k], pi[k + 1])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from inn.errors import ConversionError, ShapeError

__all__ = ["channel_distances", "channel_total_variation", "total_variation"]

#: Element budget (float64 values) of one column chunk in :func:`channel_distances`.
_CHUNK_ELEMENTS = 1 << 24

#: Rows per block of :func:`channel_distances` (blocks below the diagonal are skipped).
_BLOCK_ROWS = 512

#: Relative tolerance of the symmetry check of a distance matrix.
_SYMMETRY_RTOL = 1e-6

#: Values (float32) per block of the candidate-edge, path-edge and total-variation
#: computations. Few large tensor operations: with several threads, every operation waits for
#: its slowest thread, which on a busy machine makes many small ones very slow.
BLOCK_ELEMENTS = 1 << 24


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
    n, flats = flat_slices(slices, "channel_distances")
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


def flat_slices(
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
    n, flats = flat_slices(slices, "channel_total_variation")
    idx = torch.from_numpy(_as_index_vector(order, n))
    with torch.no_grad():
        return flats_total_variation(merged_slices(flats), idx)


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


def validated_distances(distances: Any) -> np.ndarray:
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


def merged_slices(flats: list[torch.Tensor]) -> list[torch.Tensor]:
    """The items with runs of small ones (same device and dtype, under ``BLOCK_ELEMENTS / 16``
    values each) concatenated into blocks of at most ``BLOCK_ELEMENTS`` values: groups often
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
        if flat.numel() * 16 > BLOCK_ELEMENTS:  # large enough on its own
            flush()
            size = 0
            out.append(flat)
            continue
        if run and (
            size + flat.numel() > BLOCK_ELEMENTS
            or flat.device != run[0].device
            or flat.dtype != run[0].dtype
        ):
            flush()
            size = 0
        run.append(flat)
        size += flat.numel()
    flush()
    return out


def flats_total_variation(flats: list[torch.Tensor], order: torch.Tensor) -> float:
    """Exact ``sum_k |x[order[k + 1]] - x[order[k]]|_1`` over all ``(n, width)`` items, in row
    blocks of at most ``BLOCK_ELEMENTS`` values (each summed by torch in the tensors' precision,
    the blocks in float64)."""
    total = 0.0
    n = int(order.numel())
    if n <= 1:
        return 0.0
    identity = bool(torch.equal(order, torch.arange(n, dtype=order.dtype)))
    on_device: dict[torch.device, torch.Tensor] = {}
    for flat in flats:
        index = on_device.setdefault(flat.device, order.to(flat.device))
        step = max(1, BLOCK_ELEMENTS // flat.shape[1])
        for row in range(0, n - 1, step):
            block = flat[row : row + step + 1] if identity else flat[index[row : row + step + 1]]
            # (a cascade sum: torch.dist(p=1) accumulates float32 naively, 0.5 % off at 2**24)
            total += float((block[1:] - block[:-1]).abs_().sum())
    return total


def sample_rows(
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
