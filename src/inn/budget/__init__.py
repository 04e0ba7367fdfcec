"""Widths per channel group for a parameter, MAC or latency budget, and the counts behind it.

``imodel.plan(budget)`` / ``imodel.resize(budget=...)`` use :func:`plan`: the cost of the group
widths (:func:`cost_model`: parameters and MACs counted exactly, :mod:`inn.budget.cost`, or a
latency model fitted to measurements, :func:`latency_fit`), a sensitivity per group
(:mod:`inn.budget.sensitivity`, or the channels' magnitudes, :mod:`inn.budget.magnitude`) and
an allocation (:mod:`inn.budget.allocate`).
:func:`count_parameters` and :func:`count_macs` count a plain module (an exported model);
:func:`device_round_to` is the channel multiple a device runs fast (the plans' default).
"""

from inn.budget.count import count_macs, count_parameters
from inn.budget.latency import (
    LatencyFit,
    export_ratio,
    latency_fit,
    latency_ratio,
    measure_latency,
    meet_measured,
)
from inn.budget.magnitude import channel_scores
from inn.budget.plan import (
    KINDS,
    SENSITIVITIES,
    Budget,
    Plan,
    as_budget,
    cost_model,
    has_width_statistics,
    plan,
)
from inn.budget.polynomial import CostModel
from inn.budget.rounding import device_round_to
from inn.budget.sensitivity import (
    Sensitivity,
    magnitude_table,
    output_errors,
    smallest_widths,
    weight_errors,
)

__all__ = [
    "KINDS",
    "SENSITIVITIES",
    "Budget",
    "CostModel",
    "LatencyFit",
    "Plan",
    "Sensitivity",
    "as_budget",
    "channel_scores",
    "cost_model",
    "count_macs",
    "count_parameters",
    "device_round_to",
    "export_ratio",
    "has_width_statistics",
    "latency_fit",
    "latency_ratio",
    "magnitude_table",
    "measure_latency",
    "meet_measured",
    "output_errors",
    "plan",
    "smallest_widths",
    "weight_errors",
]
