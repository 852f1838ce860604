"""Diminished Triad: a replicated Chord-style consistent-hash ring over Redis."""

from .client import DTClient
from .config import ClusterConfig, NodeSpec
from .core import COMMANDS, DTCore
from .exceptions import (
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
from .migration import Cleanup, Plan, Transfer, plan
from .ring import Arc, ArcChange, Ring, diff, transfers
from .ringstate import Member, RingState, Route, View

__all__ = [
    "COMMANDS", "Arc", "ArcChange", "ArgumentError", "AuthError", "BackendError",
    "ClusterConfig", "CommandError", "ConfigurationError", "DTClient", "DTCore", "DtriadError",
    "NodeSpec", "QuorumError", "Ring", "UnavailableError", "UnknownMethodError",
    "ValueTooLargeError", "diff", "transfers",
    "Cleanup", "Member", "Plan", "RingChangingError", "RingState", "Route", "StaleRingError",
    "Transfer", "View", "plan",
]
