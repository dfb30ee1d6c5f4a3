"""The ``Store`` protocol: a flat key → bytes backend that only moves bytes.

Backends know nothing of hashing, codecs or verification (that is ``vault.py``'s job); they
store opaque byte strings under keys and answer with exactly what was stored. Every backend
passes one contract suite (``tests/contracts.py``).

Keys are ``/``-separated relative paths made of the characters ``[A-Za-z0-9._%-]``
(no empty segments, no segment starting with ``.``); the vault builds them, so backends may
assume they are well formed but must still refuse anything else with
:class:`~seedvault.errors.StoreError`.

All methods are synchronous and thread-safe: callers on an event loop go through
``asyncio.to_thread`` at one boundary (the vault's async facade), and the ingest pipeline calls
them from worker threads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from seedvault.errors import StoreError

_SEG = r"[A-Za-z0-9_%-][A-Za-z0-9._%-]*"
_KEY_RE = re.compile(rf"^{_SEG}(/{_SEG})*$")


def check_key(key: str) -> str:
    """Return ``key`` if it is a well-formed store key, else raise :class:`StoreError`."""
    if not _KEY_RE.match(key):
        raise StoreError(f"malformed store key {key!r}")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing tells about one object."""

    key: str
    size: int
    mtime: float
    """Last modification, seconds since the epoch (UTC)."""


class Store(Protocol):
    """A flat key → bytes store.

    Atomicity: an object is visible to readers only once it is complete; a reader sees either
    the old bytes or the new bytes of a key, never a mix or a prefix. A crash during ``put``
    leaves the key as it was.
    """

    @property
    def description(self) -> str:
        """A short human-readable location (``fs:/srv/vault``, ``s3://bucket/prefix``)."""
        ...

    @property
    def remote(self) -> bool:
        """Whether every call is a network request (S3), rather than a local file operation.

        On a local store :meth:`exists` is a stat, far cheaper than a durable :meth:`put`; on a
        remote one both are a request of about the same cost. Writers of content-addressed
        objects use this to decide whether asking before a put can pay off (``ingest.py``).
        """
        ...

    def get(self, key: str) -> bytes | bytearray:
        """Return the bytes stored under ``key`` (a ``bytearray`` where the backend read them
        into one: never copied only to make them ``bytes``).

        Raises:
            ObjectNotFound: no object under ``key``.
            StoreError: the backend failed.
        """
        ...

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any object there, atomically and durably.

        Durable means: once ``put`` returns, the object survives a crash of this process. A
        crash of the *machine* may still lose the object's name until :meth:`sync` returns
        (the fs backend fsyncs each file's bytes at once but its directory entry at ``sync``,
        so a capture pays one directory fsync per shard, not one per chunk).

        Raises:
            StoreError: the backend failed; the key is unchanged.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size and modification time of the object under ``key``.

        Raises:
            ObjectNotFound: no object under ``key``.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object under ``key``; removing a missing key is not an error."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in lexicographic key order.

        ``prefix`` is a plain string prefix (``"chunks/"``, ``"refs/hf/"``). Objects written
        while the listing runs may or may not appear.
        """
        ...

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """Return the bytes under ``key`` and an opaque version tag for :meth:`put_if`.

        Raises:
            ObjectNotFound: no object under ``key``.
        """
        ...

    def put_if(self, key: str, data: bytes, version: str | None) -> str:
        """Compare-and-swap: store ``data`` only if ``key`` is still at ``version``.

        ``version=None`` means "only if no object exists under ``key``". Returns the new
        version tag. Exactly one of several concurrent callers holding the same ``version``
        succeeds.

        Raises:
            PreconditionFailed: the object is not at ``version`` (or exists, for ``None``).
            StoreError: the backend failed.
        """
        ...

    def sync(self) -> None:
        """Make every object put so far durable against a machine crash (see :meth:`put`).

        :meth:`put_if` calls it before it swaps, so whatever a ref can reach is durable first.
        """
        ...

    def close(self) -> None:
        """Release connections and file handles; the store is unusable afterwards."""
        ...
