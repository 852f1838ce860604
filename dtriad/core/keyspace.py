"""Commands over the whole keyspace or the server: asked of the ring's members.

* SCAN walks the members one after another. Its cursor names the member
  (its index among the ring's nodes, sorted) and that backend's own cursor:
  ``backend cursor * 1024 + index``. Each backend reports only the keys it
  is the master of, so every key comes once while the ring stays the same.
  A ring change during a scan can repeat keys, and miss a key whose master
  moved to a node already scanned (or shift the node list under the
  cursor): a scan that must see every key starts again after a ring change.
* KEYS asks every member and keeps, from each, the keys it is master of.
* RANDOMKEY asks every member and picks one of the keys they offer.
* FLUSHALL and FLUSHDB empty every member (data, versions, repair intents),
  fenced like writes; a cluster setting (``flush_allowed``) can refuse them.
* TIME and LOLWUT are any member's; LASTSAVE is the newest of the members'.
* SWAPDB and MOVE are refused: dtriad serves one database.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dtriad.backends.outcome import Fanout, Steps, describe
from dtriad.core.commands import RedisCommand
from dtriad.core.scripts import FLUSH
from dtriad.exceptions import CommandError, printable

if TYPE_CHECKING:
    from dtriad.core.requests import Requests

NODE_BITS = 1024  # a SCAN cursor's member index is cursor % NODE_BITS


class Keyspace:
    """Whole-keyspace and server commands, for :class:`Requests`."""

    def __init__(self, requests: Requests):
        self.requests = requests

    def command(self, spec: RedisCommand, argv: Sequence[Any]) -> Steps:
        name = spec.name
        if name in ("swapdb", "move"):
            raise CommandError(f"ERR dtriad serves a single database (0), so "
                               f"{name.upper()} has nothing to do; keys stay in database 0")
        return (yield from getattr(self, f"_{name}")(argv))

    def _members(self) -> Steps:
        view = yield from self.requests.follower.follow()
        return view, sorted(view.ring.nodes)

    def _everyone(self, command: Sequence[Any], what: str) -> Steps:
        """``command`` on every member at once; the replies, or an error
        naming the members that did not answer."""
        view, nodes = yield from self._members()
        outcomes = yield Fanout(tuple(nodes), tuple(command))
        failed = [o for o in outcomes if not o.ok]
        for o in failed:
            if o.rejected:
                raise CommandError.from_redis(o.error)
        if failed:
            names = view.names
            raise CommandError(f"ERR {what} could not reach " + ", ".join(
                f"{names.get(o.node, o.node)} ({describe(o.error)})" for o in failed))
        return view, outcomes

    def _scan(self, argv: Sequence[Any]) -> Steps:
        try:
            cursor = int(argv[1])
            if cursor < 0:
                raise ValueError
        except ValueError:
            raise CommandError("ERR invalid cursor") from None
        view, nodes = yield from self._members()
        index, backend_cursor = cursor % NODE_BITS, cursor // NODE_BITS
        if index >= len(nodes):
            return [b"0", []]
        node = nodes[index]
        reply, _ = yield from self.requests.first([node], ("SCAN", backend_cursor, *argv[2:]),
                                                  argv[1])
        following, keys = int(reply[0]), reply[1]
        mine = [k for k in keys if view.ring.preference_list(k)[0] == node]
        if following == 0:
            index, following = index + 1, 0
            if index >= len(nodes):
                return [b"0", mine]
        return [str(following * NODE_BITS + index).encode(), mine]

    def _keys(self, argv: Sequence[Any]) -> Steps:
        view, outcomes = yield from self._everyone(("KEYS", argv[1]), "KEYS")
        return [k for o in outcomes for k in o.value
                if view.ring.preference_list(k)[0] == o.node]

    def _randomkey(self, argv: Sequence[Any]) -> Steps:
        _, outcomes = yield from self._everyone(("RANDOMKEY",), "RANDOMKEY")
        offered = [o.value for o in outcomes if o.value is not None]
        return random.choice(offered) if offered else None

    def _flushall(self, argv: Sequence[Any]) -> Steps:
        if len(argv) > 2 or (len(argv) == 2 and printable(argv[1]).upper() not in ("ASYNC",
                                                                                   "SYNC")):
            raise CommandError("ERR syntax error")
        if not self.requests.config.flush_allowed:
            raise CommandError(f"ERR {printable(argv[0]).upper()} is disabled on this cluster "
                               f"(flush_allowed = false in its configuration)")
        view, _ = yield from self._members()
        yield from self._everyone(("EVAL", FLUSH, 0, view.token), printable(argv[0]).upper())
        return b"OK"

    _flushdb = _flushall

    def _time(self, argv: Sequence[Any]) -> Steps:
        _, nodes = yield from self._members()
        reply, _ = yield from self.requests.first(nodes, ("TIME",), "TIME")
        return reply

    def _lolwut(self, argv: Sequence[Any]) -> Steps:
        _, nodes = yield from self._members()
        reply, _ = yield from self.requests.first(nodes, tuple(argv), "LOLWUT")
        return reply

    def _lastsave(self, argv: Sequence[Any]) -> Steps:
        _, outcomes = yield from self._everyone(("LASTSAVE",), "LASTSAVE")
        return max(o.value for o in outcomes)
