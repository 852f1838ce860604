"""MULTI, EXEC, DISCARD, WATCH and UNWATCH on a RESP connection.

The connection's part of a transaction: queueing (``+QUEUED``; a command
refused while queueing makes EXEC answer ``EXECABORT``), the WATCHed keys'
versions, and the encoding of EXEC's replies. Running it, on one master or
across several, is :class:`dtriad.core.transactions.Transactions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dtriad.core.commands import RedisCommand
from dtriad.core.steps import arun
from dtriad.exceptions import CommandError, DtriadError, printable
from dtriad.frontends.resp import OK, TooLarge, error

if TYPE_CHECKING:
    from dtriad.frontends.respd import RespServer, Session

QUEUED = b"+QUEUED\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


@dataclass(frozen=True)
class _Publish:
    """A PUBLISH inside MULTI: run after the transaction's data commands (a
    subscriber told of a change finds it applied), in the reply's place."""

    spec: RedisCommand
    argv: list


class TransactionCommands:
    def __init__(self, server: RespServer):
        self.server = server
        self.core = server.core.requests.transactions

    def queue(self, session: Session, spec: RedisCommand | None, argv: list) -> bytes:
        """A command sent after MULTI: checked now, run at EXEC."""
        try:
            if spec is None:  # Redis 6.2's words
                start = "".join(f"`{printable(a)[:128]}`, " for a in argv[1:])
                raise CommandError(f"ERR unknown command `{printable(argv[0])[:128]}`, "
                                   f"with args beginning with: {start}")
            for arg in argv:
                if type(arg) is TooLarge:
                    raise CommandError(f"ERR an argument of {arg.size} bytes: this cluster "
                                       f"accepts at most "
                                       f"{self.server.core.config.max_value_bytes}")
            if spec.name == "publish":  # sent once the rest has run: see exec
                self.server.core.requests.checked(argv)
                session.multi.append(_Publish(spec, argv))
            else:
                session.multi.append(self.core.queued(argv))
        except DtriadError as e:
            session.multi_error = True
            return error(e.line)
        return QUEUED

    async def command(self, session: Session, spec: RedisCommand, argv: list) -> bytes:
        name = spec.name
        if name == "multi":
            if session.multi is not None:
                return error("ERR MULTI calls can not be nested")
            session.multi, session.multi_error = [], False
            return OK
        if name == "discard":
            if session.multi is None:
                return error("ERR DISCARD without MULTI")
            self._end(session)
            return OK
        if name == "watch":
            if session.multi is not None:
                return error("ERR WATCH inside MULTI is not allowed")
            new = [k for k in dict.fromkeys(argv[1:]) if k not in session.watched]
            if new:
                session.watched.update(await arun(self.core.versions(new), self.server.client))
            return OK
        if name == "unwatch":
            session.watched = {}
            return OK
        # exec
        if session.multi is None:
            return error("ERR EXEC without MULTI")
        queued, watched, failed = session.multi, session.watched, session.multi_error
        self._end(session)
        if failed:
            return EXECABORT
        data = [q for q in queued if not isinstance(q, _Publish)]
        replies = await arun(self.core.execute(data, watched), self.server.client)
        if replies is None:
            return b"_\r\n" if session.resp3 else b"*-1\r\n"
        if len(data) < len(queued):  # PUBLISH, once the writes before it are in force
            done = iter(replies)
            replies = [await self._publish(q) if isinstance(q, _Publish) else next(done)
                       for q in queued]
        out = [b"*%d\r\n" % len(replies)]
        for q, value in zip(queued, replies, strict=True):
            if isinstance(value, DtriadError):
                out.append(error(value.line))
            else:
                out.append(self.server.encode(session, q.spec, q.argv, value))
        return b"".join(out)

    async def _publish(self, item: _Publish):
        try:
            return await self.server.pubsub.publish(item.argv[1], item.argv[2])
        except DtriadError as e:
            return e

    @staticmethod
    def _end(session: Session) -> None:
        session.multi, session.multi_error, session.watched = None, False, {}
