"""Results of a row-based experiment written as ``results.json`` (title, command, rows) and
``results.md`` (title, command, table)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["save_rows"]


def save_rows(out: Path, title: str, command: str, rows: Sequence[dict], table: str) -> str:
    """Write both files under ``out`` (created); returns the markdown written."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"title": title, "command": command, "rows": list(rows)}
    (out / "results.json").write_text(json.dumps(payload, indent=1))
    text = f"# {title}\n\n`{command}` (see the script's docstring)\n\n{table}\n"
    (out / "results.md").write_text(text)
    return text
