"""MULTI/EXEC/DISCARD/WATCH/UNWATCH on a RESP connection. Placeholder."""

from __future__ import annotations

from dtriad.frontends.resp import error


class TransactionCommands:
    def __init__(self, server):
        self.server = server

    def queue(self, session, spec, argv) -> bytes:
        return error("ERR not served yet")

    async def command(self, session, spec, argv) -> bytes:
        return error("ERR not served yet")
