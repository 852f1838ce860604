"""Blocking commands over RESP (BLPOP, BRPOP, BRPOPLPUSH, BLMOVE, BZPOPMIN,
BZPOPMAX, XREAD/XREADGROUP BLOCK). Not served yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dtriad.frontends.resp import error

if TYPE_CHECKING:
    from dtriad.frontends.respd import RespServer, Session


class Blocking:
    def __init__(self, server: RespServer):
        self.server = server

    def blocks(self, spec, argv: list) -> bool:
        """Whether ``argv`` may wait (XREAD ... BLOCK); the SESSION-kind
        blocking commands always come here."""
        return False

    async def command(self, session: Session, spec, argv: list) -> bytes:
        return error(f"ERR '{spec.name}' is not served yet")

    def close(self) -> None:
        pass
