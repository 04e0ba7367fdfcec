"""The ``inn`` command: ``prune``, ``inspect`` and ``train``, one module each.

Other installed packages add commands through the ``inn.commands`` entry-point group: each entry
point is a callable ``register(subparsers)`` that adds its sub-parsers, with ``func`` set to a
function of the parsed arguments that returns the exit code. The paper's experiments beside the
library add ``demo``, ``experiment`` and ``upscale`` this way.
"""

from inn.cli.main import main
from inn.cli.models import (
    UsageError,
    command_line,
    load_weights,
    parse_shape,
    positive_float,
    positive_int,
)
from inn.cli.prune import parse_budgets

__all__ = [
    "UsageError",
    "command_line",
    "load_weights",
    "main",
    "parse_budgets",
    "parse_shape",
    "positive_float",
    "positive_int",
]
