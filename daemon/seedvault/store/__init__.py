"""Storage backends: ``fs`` (a local directory), ``s3`` (any S3-compatible store), ``memory``.

``BACKENDS`` is the registry: a plain dict from the config's ``backend`` name to a factory
taking the backend's settings as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seedvault.store.base import Store


def _fs(**kwargs: Any) -> Store:
    from seedvault.store.fs import FsStore

    return FsStore(kwargs["path"])


def _s3(**kwargs: Any) -> Store:
    from seedvault.store.s3 import S3Store  # boto3 is imported only by nodes that use S3

    return S3Store(
        endpoint_url=kwargs.get("endpoint_url") or None,
        bucket=kwargs["bucket"],
        prefix=kwargs.get("prefix", ""),
        region=kwargs.get("region", "us-east-1"),
        access_key=kwargs["access_key"],
        secret_key=kwargs["secret_key"],
        put_checksum=kwargs.get("put_checksum", "crc32"),
    )


def _memory(**kwargs: Any) -> Store:
    from seedvault.store.memory import MemoryStore

    return MemoryStore()


BACKENDS: dict[str, Callable[..., Store]] = {"fs": _fs, "s3": _s3, "memory": _memory}
