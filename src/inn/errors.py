"""The exceptions `inn` raises on purpose. All derive from :class:`InnError`."""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "")  # ".../inn/"

__all__ = [
    "ConversionError",
    "InnError",
    "InterpolationError",
    "PartitionError",
    "QuadratureError",
    "ShapeError",
    "first_line",
    "warn",
]


class InnError(Exception):
    """Base class of every error raised on purpose by `inn`."""


class PartitionError(InnError, ValueError):
    """A partition (grid on [0, 1]) is malformed: outside the interval, not increasing, empty."""


class QuadratureError(InnError, ValueError):
    """A quadrature rule cannot be applied to the given points (unknown rule, wrong count)."""


class InterpolationError(InnError, ValueError):
    """Node values or points given to the cubic convolution interpolation are malformed."""


class ShapeError(InnError, ValueError):
    """A tensor has a shape that does not fit the layer or the partition it is used with."""


class ConversionError(InnError, ValueError):
    """A model (or one of its modules) cannot be converted into an integral network."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message ("" if it has none): one line for a report."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def warn(message: str) -> None:
    """A ``UserWarning`` attributed to the first caller outside ``inn`` (the user's line, not
    ours, whatever the depth of the call)."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2: our caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, UserWarning, stacklevel=level)
