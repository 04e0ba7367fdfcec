"""Rerunning some methods of an experiment and keeping the other methods' committed rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import inn


class _HasMethod(Protocol):
    method: str


R = TypeVar("R", bound=_HasMethod)

__all__ = ["merge_rerun"]


def merge_rerun(
    path: Path,
    earlier: tuple[Sequence[R], str] | None,
    rows: Sequence[R],
    command: str,
    order: Sequence[str],
) -> tuple[list[R], str]:
    """``rows`` (a rerun of some methods) in place of those methods' rows of the ``earlier``
    results (rows, command) read from ``path``; the other methods' rows kept, all sorted by
    ``order`` (stable); the commands joined by ``&&``: running them in turn gives the file
    again."""
    if earlier is None:
        raise inn.InnError(f"--update needs earlier results at {path}; run without --update first")
    earlier_rows, earlier_command = earlier
    rerun = {r.method for r in rows}
    kept = [r for r in earlier_rows if r.method not in rerun]
    rank: dict[str, Any] = {m: i for i, m in enumerate(order)}
    merged = sorted([*kept, *rows], key=lambda r: rank.get(r.method, len(rank)))
    return merged, f"{earlier_command} && {command}"
