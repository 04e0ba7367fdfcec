"""Tracing models and finding the channel axes that must share one partition."""

from inn.graph.groups import ChannelGroup, GraphAnalysis, ModuleRoles, Segment, analyse
from inn.graph.members import Member, group_members
from inn.graph.rules import register_channel_rule
from inn.graph.trace import register_leaf_module, trace

__all__ = [
    "ChannelGroup",
    "GraphAnalysis",
    "Member",
    "ModuleRoles",
    "Segment",
    "analyse",
    "group_members",
    "register_channel_rule",
    "register_leaf_module",
    "trace",
]
