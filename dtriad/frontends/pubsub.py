"""Pub/sub over RESP. Not served yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dtriad.frontends.resp import error

if TYPE_CHECKING:
    from dtriad.frontends.respd import RespServer, Session


class PubSub:
    def __init__(self, server: RespServer):
        self.server = server

    def refuses(self, session: Session, spec) -> bytes | None:
        """The error for a command a subscribed RESP2 connection may not send, or None."""
        return None

    async def command(self, session: Session, spec, argv: list) -> bytes:
        return error(f"ERR '{spec.name}' is not served yet")

    def disconnected(self, session: Session) -> None:
        """The session closed or was RESET: drop its subscriptions."""

    def close(self) -> None:
        pass
