"""Tracing models, graph passes (BatchNorm folding) and finding the channel axes that must share
one partition, through a registry of channel rules (:mod:`inn.graph.rules`)."""

# the built-in rules register themselves when imported (timm's and torchvision's lazily, at
# the first trace after that library is imported)
from inn.graph import (  # noqa: F401
    rules_attention,
    rules_sequence,
    rules_tensor,
    rules_timm,
    rules_torch,
    rules_torchvision,
)
from inn.graph.context import RuleContext
from inn.graph.fold import fold_batchnorms
from inn.graph.groups import ChannelGroup, GraphAnalysis, ModuleRoles, Segment, analyse
from inn.graph.members import Member, group_members
from inn.graph.rules import register_channel_rule
from inn.graph.trace import register_leaf_module, trace

__all__ = [
    "ChannelGroup",
    "GraphAnalysis",
    "Member",
    "ModuleRoles",
    "RuleContext",
    "Segment",
    "analyse",
    "fold_batchnorms",
    "group_members",
    "register_channel_rule",
    "register_leaf_module",
    "trace",
]
