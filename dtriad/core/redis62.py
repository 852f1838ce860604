"""Redis 6.2's replies, whichever Redis the backends run.

dtriad serves Redis 6.2's semantics. Backends may run 6.2 or 7.0; where 7.0
answers a 6.2 command differently in ways a client can see, the request
core asks :func:`refused` before sending a command and passes the reply
through :func:`as_62` after. Both are no-ops against 6.2 backends (their
replies already are 6.2's). Error wording is in
:data:`dtriad.exceptions.REDIS_62_WORDING`. Pure.

What cannot be made 6.2's is left as 7.0 gives it and said in the README:
DUMP payloads (RDB format 10), XCLAIM of deleted entries (7.0 drops them
instead of answering nil), and stream metadata 7.0 keeps and 6.2 did not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dtriad.core.commands import RedisCommand
from dtriad.exceptions import CommandError

# XINFO fields Redis 7.0 added; 6.2 clients never see them.
_NEW_STREAM_FIELDS = {b"max-deleted-entry-id", b"entries-added", b"recorded-first-entry-id",
                      b"entries-read", b"lag"}


def _upper(value: Any) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).upper()


def refused(spec: RedisCommand, argv: Sequence[Any]) -> Any:
    """Raise 6.2's error for arguments only 7.0 accepts; or return the reply
    6.2 gives without looking at the key (ZPOPMIN with a count of 0 or
    less); None: send the command."""
    name = spec.name
    if name in ("bitcount", "bitpos") and len(argv) > (4 if name == "bitcount" else 5):
        raise CommandError("ERR syntax error")  # 7.0's BIT|BYTE unit
    if name in ("zpopmin", "zpopmax") and len(argv) == 3:
        try:
            count = int(argv[2])
        except ValueError:
            raise CommandError("ERR value is not an integer or out of range") from None
        if count <= 0:
            return []
    return None


# XGROUP's subcommands and their argument counts (the name included), as 6.2 takes them.
_XGROUP = {"CREATE": (5, 6), "SETID": (5,), "DESTROY": (4,), "CREATECONSUMER": (5,),
           "DELCONSUMER": (5,), "HELP": (2,)}


def xgroup_error(argv: Sequence[Any], key_exists: bool) -> str | None:
    """6.2's error for an XGROUP it does not take (7.0 gives another one, and
    inside dtriad's scripts only a generic one), or None."""
    sub = _upper(argv[1])
    if len(argv) in _XGROUP.get(sub, ()):
        return None
    if len(argv) >= 4 and not key_exists and sub != "HELP":
        return ("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE "
                "you may want to use the MKSTREAM option to create an empty stream "
                "automatically.")
    return (f"ERR Unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode() if isinstance(argv[1], bytes) else argv[1]}'. "
            f"Try XGROUP HELP.")


def as_62(spec: RedisCommand, argv: Sequence[Any], reply: Any) -> Any:
    """``reply`` as Redis 6.2 shapes it."""
    name = spec.name
    if name == "xautoclaim" and isinstance(reply, list) and len(reply) == 3:
        return reply[:2]  # 7.0 adds the IDs it deleted from the PEL
    if name == "xinfo" and isinstance(reply, list) and len(argv) > 2:
        sub = _upper(argv[1])
        if sub == "STREAM" and not any(_upper(a) == "FULL" for a in argv[3:]):
            return _without_new_fields(reply)
        if sub in ("GROUPS", "CONSUMERS"):
            return [_without_new_fields(r) if isinstance(r, list) else r for r in reply]
    if name == "object" and len(argv) > 1 and _upper(argv[1]) == "ENCODING" and \
            reply == b"listpack":
        return b"ziplist"  # 7.0's listpack is 6.2's ziplist (small hashes, sorted sets)
    return reply


def _without_new_fields(pairs: list) -> list:
    out = []
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i] not in _NEW_STREAM_FIELDS:
            out += [pairs[i], pairs[i + 1]]
    return out
