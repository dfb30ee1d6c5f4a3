"""Page cursors: opaque, signed, bounded, and checked strictly before anything is read.

A cursor is ``<base64url(JSON)>.<base64url(HMAC-SHA256[:16])>``: the JSON names the listing it
belongs to (``kind``) and where the next page starts. The key is random per server process, so
a cursor cannot be forged or edited, and one from another listing or an earlier run of the
server is refused (400) rather than misread: the client starts the listing again. Cursors are
at most :data:`MAX_CURSOR_CHARS` long; a longer one is refused before it is decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

MAX_CURSOR_CHARS = 2048
_MAC_BYTES = 16


class CursorError(ValueError):
    """A cursor that this server did not issue for this listing."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Issues and checks cursors with one process-wide key."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES])

    def encode(self, kind: str, position: Any) -> str:
        """A cursor for listing ``kind`` resuming at ``position`` (any JSON value)."""
        body = _b64(json.dumps({"k": kind, "p": position}, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def decode(self, kind: str, cursor: str) -> Any:
        """The position in a cursor issued by :meth:`encode` for ``kind``.

        Raises:
            CursorError: too long, malformed, forged or edited, or issued for another listing.
        """
        if len(cursor) > MAX_CURSOR_CHARS:
            raise CursorError("cursor is too long")
        body, sep, mac = cursor.partition(".")
        if not sep or not body or not mac:
            raise CursorError("malformed cursor")
        try:
            body.encode("ascii")
            mac.encode("ascii")
        except UnicodeEncodeError:
            raise CursorError("malformed cursor") from None
        if not hmac.compare_digest(self._mac(body), mac):
            raise CursorError("unknown or expired cursor: start the listing again")
        try:
            doc = json.loads(_unb64(body))
        except (binascii.Error, ValueError):
            raise CursorError("malformed cursor") from None
        if not isinstance(doc, dict) or doc.get("k") != kind or "p" not in doc:
            raise CursorError("cursor belongs to another listing")
        return doc["p"]
