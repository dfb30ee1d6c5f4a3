"""``memory`` backend: a dict in this process, for tests and throwaway vaults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import blake3

from seedvault.errors import ObjectNotFound, PreconditionFailed
from seedvault.store.base import ObjectInfo, check_key


class MemoryStore:
    """Objects kept in a dict; thread-safe; lost when the process ends."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    @property
    def remote(self) -> bool:
        """A dict in this process."""
        return False

    @property
    def description(self) -> str:
        return f"memory:{id(self):x}"

    def get(self, key: str) -> bytes:
        return self.get_versioned(key)[0]

    def put(self, key: str, data: bytes) -> None:
        check_key(key)
        with self._lock:
            self._objects[key] = (bytes(data), time.time())

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._objects

    def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        with self._lock:
            try:
                data, mtime = self._objects[key]
            except KeyError:
                raise ObjectNotFound(key) from None
        return ObjectInfo(key, len(data), mtime)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            items = sorted((k, len(d), m) for k, (d, m) in self._objects.items())
        for key, size, mtime in items:
            if key.startswith(prefix):
                yield ObjectInfo(key, size, mtime)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        check_key(key)
        with self._lock:
            try:
                data = self._objects[key][0]
            except KeyError:
                raise ObjectNotFound(key) from None
        return data, blake3.blake3(data).hexdigest()

    def put_if(self, key: str, data: bytes, version: str | None) -> str:
        check_key(key)
        with self._lock:
            current = self._objects.get(key)
            current_version = None if current is None else blake3.blake3(current[0]).hexdigest()
            if current_version != version:
                raise PreconditionFailed(
                    f"{key}: expected version {version}, found {current_version}"
                )
            self._objects[key] = (bytes(data), time.time())
        return blake3.blake3(data).hexdigest()

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass
