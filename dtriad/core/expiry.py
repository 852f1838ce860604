"""Relative expiries become absolute before a write is replicated.

``EXPIRE k 10`` applied by the master now and by a backup 30 ms later would
leave the backup's copy living 30 ms longer; Redis's own replication sends
its replicas ``PEXPIREAT`` for that reason. dtriad does the same, at the
front end, before the write reaches any copy: every copy applies the same
absolute expiry. Pure: the clock is a parameter.

Only well-formed, positive relative times are rewritten; anything else
(a negative, a non-integer, both EX and PX) goes to the backends as sent,
so their error or behaviour is Redis's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_LIMIT = 10 ** 13  # larger relative times are left to Redis's own range errors


def _positive(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < _LIMIT else None


def _upper(value: Any) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).upper()


def absolute(argv: Sequence[Any], now_ms: int) -> list[Any]:
    """``argv`` with a relative expiry replaced by the absolute one it means at
    ``now_ms`` (EXPIRE, PEXPIRE, SETEX, PSETEX, SET EX/PX, GETEX EX/PX,
    RESTORE with a TTL); other commands unchanged."""
    argv = list(argv)
    name = _upper(argv[0]) if argv else ""
    if name in ("EXPIRE", "PEXPIRE") and len(argv) == 3:
        amount = _positive(argv[2])
        if amount is not None:
            at = now_ms + (amount * 1000 if name == "EXPIRE" else amount)
            return ["PEXPIREAT", argv[1], at]
    elif name in ("SETEX", "PSETEX") and len(argv) == 4:
        amount = _positive(argv[2])
        if amount is not None:
            at = now_ms + (amount * 1000 if name == "SETEX" else amount)
            return ["SET", argv[1], argv[3], "PXAT", at]
    elif name in ("SET", "GETEX"):
        start = 3 if name == "SET" else 2
        words = [_upper(a) for a in argv[start:]]
        relative = [w for w in words if w in ("EX", "PX", "EXAT", "PXAT", "PERSIST")]
        if len(relative) == 1 and relative[0] in ("EX", "PX"):
            at = start + words.index(relative[0])
            amount = _positive(argv[at + 1]) if at + 1 < len(argv) else None
            if amount is not None:
                argv[at] = "PXAT"
                argv[at + 1] = now_ms + (amount * 1000 if relative[0] == "EX" else amount)
    elif name == "RESTORE" and len(argv) >= 4:
        if not any(_upper(a) == "ABSTTL" for a in argv[4:]):
            amount = _positive(argv[2])
            if amount is not None:
                argv[2] = now_ms + amount
                argv.append("ABSTTL")
    return argv
