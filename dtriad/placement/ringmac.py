"""The ring's MAC: HMAC-SHA256 under the cluster secret.

Pure: no I/O. A ring state is stored (``dtriad:ring``), pushed
(``ringUpdate``) and shared between a DTServer's workers (its state file) as
its canonical JSON (:meth:`RingState.to_json`) with one more member, ``mac``:
64 lowercase hex digits of

    HMAC-SHA256(key = secret as UTF-8, CONTEXT + canonical JSON as UTF-8)

The canonical JSON holds every field of the state, its token among them, so
the MAC binds the token; it is recomputed from the parsed state when
verified, so a text differing only in layout verifies as the state it means,
and a field added, dropped or changed does not. The protocol, and why an
unsigned ring is never adopted, is in ``docs/membership.md``
("Authenticated rings").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

from dtriad.exceptions import ArgumentError
from dtriad.placement.ringstate import RingState, load_json

CONTEXT = b"dtriad ring v1\n"  # this MAC is of a ring state, under this protocol
MAC_FIELD = "mac"
_HEX = re.compile(r"[0-9a-f]{64}")


class Unsigned(ArgumentError):
    """A well-formed ring state that carries no MAC (stored before rings were
    signed, or by a cluster without a secret). ``state`` is what it says."""

    def __init__(self, state: RingState):
        super().__init__("unsigned ring state")
        self.state = state


def ring_key(secret: str | None) -> bytes | None:
    """The MAC key of a cluster's secret (None: the cluster has none)."""
    return secret.encode() if secret else None


def ring_mac(state: RingState, key: bytes) -> str:
    return hmac.new(key, CONTEXT + state.to_json().encode(), hashlib.sha256).hexdigest()


def signed_json(state: RingState, key: bytes | None) -> str:
    """``state`` as stored and pushed: its canonical JSON plus its MAC
    (without a key, the canonical JSON alone)."""
    if key is None:
        return state.to_json()
    return json.dumps({**state.to_dict(), MAC_FIELD: ring_mac(state, key)},
                      separators=(",", ":"))


def verify_json(text: str | bytes, key: bytes | None) -> RingState:
    """The ring state ``text`` holds, if its MAC verifies under ``key``.

    Raises :class:`ArgumentError` (malformed, or a MAC that does not verify:
    forged, or signed under another secret) or :class:`Unsigned` (no MAC, or
    no key to check one by; its ``state`` is the parsed ring, for the callers
    that may still use it: ``docs/membership.md``)."""
    data = load_json(text)
    if not isinstance(data, dict):
        raise ArgumentError(f"malformed ring state: {type(data).__name__}, not an object")
    mac = data.pop(MAC_FIELD, None)
    if mac is not None and (not isinstance(mac, str) or not _HEX.fullmatch(mac)):
        raise ArgumentError("malformed ring state: its mac must be 64 lowercase hex digits")
    state = RingState.from_dict(data)
    if mac is None or key is None:
        raise Unsigned(state)
    if not hmac.compare_digest(mac, ring_mac(state, key)):
        raise ArgumentError(f"ring state of epoch {state.epoch} (token {state.token}) does not "
                            f"verify: forged, or signed under another cluster secret")
    return state


__all__ = ["CONTEXT", "MAC_FIELD", "Unsigned", "ring_key", "ring_mac", "signed_json",
           "verify_json"]
