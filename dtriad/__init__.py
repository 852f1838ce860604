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
    UnavailableError,
    UnknownMethodError,
    ValueTooLargeError,
)
from .ring import Arc, ArcChange, Ring, diff, transfers

__all__ = [
    "COMMANDS", "Arc", "ArcChange", "ArgumentError", "AuthError", "BackendError",
    "ClusterConfig", "CommandError", "ConfigurationError", "DTClient", "DTCore", "DtriadError",
    "NodeSpec", "QuorumError", "Ring", "UnavailableError", "UnknownMethodError",
    "ValueTooLargeError", "diff", "transfers",
]
