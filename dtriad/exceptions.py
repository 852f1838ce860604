"""One error tree for dtriad.

Every error a user can cause or meet carries a stable ``code`` (shown to HTTP
clients as ``{"error": ..., "code": ...}`` and as the RESP error
prefix) and an HTTP status. Errors carry parsed fields (which node, how many
copies) so callers never have to pick apart a message.
"""

from __future__ import annotations

import re


class DtriadError(Exception):
    """Root of every dtriad error."""

    code = "ERR"
    http_status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def line(self) -> str:
        """The error as Redis would word it: see :func:`error_line`."""
        return error_line(self.code, self.message)


def printable(value: object) -> str:
    """A key or argument as text for a message: bytes decoded as UTF-8 (bad
    bytes replaced), anything else ``str()``. (Replies keep their type:
    :func:`dtriad.core.commands.text`.)"""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def command_name(value: object) -> str:
    """A command name for an error message: at most 128 characters, as Redis
    shows it (a 1 MiB name must not come back whole, least of all before AUTH)."""
    if type(value).__name__ == "TooLarge":  # skipped as it arrived (frontends/resp.py)
        return f"<a name of {value.size} bytes>"  # type: ignore[attr-defined]
    return printable(value)[:128]


def error_line(code: str, message: str) -> str:
    """A RESP error line: Redis's own errors keep their words (they start with
    their code, ``WRONGTYPE Operation ...``); dtriad's get their code in front
    (``QUORUM write to key 'k' is held by 1 of 3 copies ...``)."""
    return message if message.split(" ", 1)[0] == code else f"{code} {message}"


class ConfigurationError(DtriadError):
    """A configuration value or cluster file is invalid."""

    code = "CONFIG"


class ArgumentError(DtriadError):
    """A request is missing an argument or has a malformed one."""

    code = "BADARG"
    http_status = 400


class HttpMethodError(ArgumentError):
    """An HTTP method the API does not take (it takes GET and POST)."""

    http_status = 405


class MediaTypeError(ArgumentError):
    """A request body in a form the HTTP API does not read (multipart)."""

    http_status = 415


class BodyTimeoutError(ArgumentError):
    """A request body did not arrive in time (a slow or stalled client)."""

    code = "TIMEOUT"
    http_status = 408


class UnknownMethodError(DtriadError):
    code = "UNKNOWN_METHOD"
    http_status = 404


class ValueTooLargeError(ArgumentError):
    code = "TOO_LARGE"
    http_status = 413

    def __init__(self, what: str, size: int | None = None, limit: int | None = None):
        how_big = f"is {size} bytes" if size is not None else "is too large"
        cap = f"at most {limit} bytes" if limit is not None else "less"
        super().__init__(
            f"{what} {how_big}; this cluster accepts {cap} "
            f"(raise max_value_bytes with 'dtriad up --max-value-bytes' if you need more)"
        )
        self.size = size
        self.limit = limit


class CommandError(DtriadError):
    """Redis itself rejected the command (WRONGTYPE, not an integer, ...).

    ``code`` is the Redis error prefix, so clients see the same words Redis uses.
    """

    http_status = 400

    def __init__(self, message: str, code: str = "ERR"):
        super().__init__(message)
        self.code = code

    @classmethod
    def from_redis(cls, exc: Exception) -> CommandError:
        """A backend's error reply, worded as Redis 6.2 words it (the
        semantics dtriad serves, whichever Redis the backends run)."""
        text = str(exc)
        for pattern, wording in REDIS_62_WORDING:
            text = pattern.sub(wording, text)
        head = text.split(" ", 1)[0]
        code = head if head.isupper() and head.isalpha() else "ERR"
        return cls(text if code != "ERR" or text.startswith("ERR") else f"ERR {text}", code)


# Error replies Redis 7 words differently from 6.2, as (7's, 6.2's).
REDIS_62_WORDING = [
    (re.compile(r"^(ERR invalid expire time in) '(\w+)' command$"), r"\1 \2"),
    (re.compile(r"^(ERR at least 1 input key is needed for) '(\w+)' command$"), r"\1 \2"),
    (re.compile(r"^ERR wrong number of arguments for 'xadd' command$"),
     "ERR wrong number of arguments for XADD"),
    (re.compile(r"^ERR unsupported unit provided\. please use M, KM, FT, MI$"),
     "ERR unsupported unit provided. please use m, km, ft, mi"),
    (re.compile(r"^ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and "
                r"WITHCOORD options$"),
     "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and "
     "WITHCOORDS options"),
    (re.compile(r"^(ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
                r"second),? \.\.\. or use negative to start from the end of the list$"),
     r"\1, ..."),
    (re.compile(r"^ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH "
                r"and WITHCOORD options$"),
     "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and "
     "WITHCOORDS options"),
    (re.compile(r"^ERR unknown subcommand or wrong number of arguments"),
     "ERR Unknown subcommand or wrong number of arguments"),
    (re.compile(r"^ERR unknown subcommand '(.*)'\. Try (\w+) HELP\.$"),
     r"ERR Unknown subcommand or wrong number of arguments for '\1'. Try \2 HELP."),
    (re.compile(r"^ERR wrong number of arguments for '(\w+)\|(\w+)' command$"),
     lambda m: (f"ERR Unknown subcommand or wrong number of arguments for "
                f"'{m.group(2).upper()}'. Try {m.group(1).upper()} HELP.")),
]


class BackendError(DtriadError):
    """A Redis backend could not be reached or did not answer in time."""

    code = "BACKEND_DOWN"
    http_status = 503

    def __init__(self, message: str, node: str | None = None):
        super().__init__(message)
        self.node = node


class UnavailableError(BackendError):
    """No copy of a key could be reached for a read."""

    code = "UNAVAILABLE"

    def __init__(self, key: str, failures: dict[str, str], needed: str | None = None):
        detail = "; ".join(f"{node}: {why}" for node, why in failures.items())
        what = f"too few copies of key {key!r} answered, {needed} needed" if needed else (
            f"no copy of key {key!r} is reachable")
        super().__init__(f"{what} ({detail}); check the backends with 'dtriad status'")
        self.key = key
        self.failures = failures


class QuorumError(BackendError):
    """A write reached fewer copies than required.

    ``copies`` is how many copies hold the write now; ``failures`` maps each
    node that did not take it to the reason.
    """

    code = "QUORUM"

    def __init__(self, key: str, copies: int, required: int, total: int,
                 failures: dict[str, str]):
        detail = "; ".join(f"{node}: {why}" for node, why in failures.items())
        super().__init__(
            f"write to key {key!r} is held by {copies} of {total} copies, "
            f"{required} required ({detail}); the copies that hold it keep it and the "
            f"others are repaired from them once they answer. Retrying applies the "
            f"command again (append, incr, lPush and lPop are not idempotent); "
            f"see 'dtriad status'"
        )
        self.key = key
        self.copies = copies
        self.required = required
        self.total = total
        self.failures = failures


class AuthError(DtriadError):
    code = "NOAUTH"
    http_status = 401


class StaleRingError(DtriadError):
    """A ring update older than the one in force (a lower epoch) was refused."""

    code = "STALE"
    http_status = 409

    def __init__(self, offered: int, current: int):
        super().__init__(
            f"refused a ring update with token {offered}: this DTServer already uses "
            f"token {current} (ring updates must never go back)")
        self.offered = offered
        self.current = current


class RingChangingError(BackendError):
    """The ring changed under a request more often than it could follow."""

    code = "TRYAGAIN"


class PartialWriteError(BackendError):
    """A command split by node (a very large MSET) wrote some nodes' keys and
    then failed: the message says which."""

    code = "PARTIAL"


class InDoubtError(BackendError):
    """A cross-node transaction lost a backend between its commit point and
    the end: its outcome is decided, and finished by whoever meets its locks."""

    code = "INDOUBT"


class MasterMovedError(BackendError):
    """The key's master applied a write, then the ring gave the key another
    master before the copies took it: the write is not sent again (it could
    apply twice), so whether the new master holds it is unknown."""

    code = "QUORUM"

    def __init__(self, key: str):
        super().__init__(
            f"write to key {key!r} was applied by its master, then the ring gave the key "
            f"another master before every copy took it; it is not sent again (it could "
            f"apply twice), so it may or may not be in force: read the key before retrying")
        self.key = key
