"""Widths per channel group for a parameter, MAC or latency budget.

``imodel.plan(budget)`` / ``imodel.resize(budget=...)`` use :func:`plan`: an exact cost model of
the group widths (:mod:`inn.budget.cost`, or a latency model fitted to measurements,
:mod:`inn.budget.latency`), a sensitivity per group (:mod:`inn.budget.sensitivity`) and a greedy
allocation (:mod:`inn.budget.allocate`).
"""

from inn.budget.cost import CostModel, cost_models
from inn.budget.latency import LatencyFit, fit_latency, measure_latency
from inn.budget.plan import (
    KINDS,
    SENSITIVITIES,
    Budget,
    Plan,
    as_budget,
    cost_model,
    latency_fit,
    plan,
)
from inn.budget.sensitivity import Sensitivity, output_errors, smallest_widths, weight_errors

__all__ = [
    "KINDS",
    "SENSITIVITIES",
    "Budget",
    "CostModel",
    "LatencyFit",
    "Plan",
    "Sensitivity",
    "as_budget",
    "cost_model",
    "cost_models",
    "fit_latency",
    "latency_fit",
    "measure_latency",
    "output_errors",
    "plan",
    "smallest_widths",
    "weight_errors",
]
