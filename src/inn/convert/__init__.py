"""Conversion of trained networks into integral ones; resizing and export."""

from inn.convert.convert import convert, prepare
from inn.convert.coverage import Coverage
from inn.convert.model import ConversionReport, Group, IntegralModel

__all__ = [
    "ConversionReport",
    "Coverage",
    "Group",
    "IntegralModel",
    "convert",
    "prepare",
]
