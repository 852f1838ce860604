"""Diminished Triad: a replicated Chord-style consistent-hash ring over Redis."""

from dtriad.backends.client import DTClient
from dtriad.config import ClusterConfig, NodeSpec
from dtriad.core.commands import API as COMMANDS
from dtriad.core.dtcore import DTCore
from dtriad.exceptions import (
    ArgumentError,
    AuthError,
    BackendError,
    CommandError,
    ConfigurationError,
    DtriadError,
    QuorumError,
    RingChangingError,
    StaleRingError,
    UnavailableError,
    UnknownMethodError,
    ValueTooLargeError,
)
from dtriad.frontends.smart import Redis
from dtriad.placement.planner import Cleanup, Plan, Transfer, plan
from dtriad.placement.ring import Arc, ArcChange, Ring, diff, transfers
from dtriad.placement.ringstate import Member, RingState, Route, View

__all__ = [
    "COMMANDS", "Arc", "ArcChange", "ArgumentError", "AuthError", "BackendError",
    "ClusterConfig", "CommandError", "ConfigurationError", "DTClient", "DTCore", "DtriadError",
    "NodeSpec", "QuorumError", "Redis", "Ring", "UnavailableError", "UnknownMethodError",
    "ValueTooLargeError", "diff", "transfers",
    "Cleanup", "Member", "Plan", "RingChangingError", "RingState", "Route", "StaleRingError",
    "Transfer", "View", "plan",
]
