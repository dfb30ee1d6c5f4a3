"""The composition root: builds a node's vault, catalog and ingest pipeline from its config.

Only ``app`` and ``cli`` import everything; the CLI commands and (later) the daemon and the
server all open the node through :class:`Node`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType

from seedvault.catalog import Catalog
from seedvault.config import Config
from seedvault.ingest import Ingestor
from seedvault.store import BACKENDS
from seedvault.store.base import Store
from seedvault.vault import Vault


def open_store(cfg: Config, env: dict[str, str] | None = None) -> Store:
    """The store the config names (secrets read from the environment here, and only here)."""
    environ = os.environ if env is None else env
    v = cfg.vault
    if v.backend == "s3":
        return BACKENDS["s3"](
            endpoint_url=v.endpoint_url,
            bucket=v.bucket,
            prefix=v.prefix,
            region=v.region,
            access_key=environ.get(v.access_key_env, ""),
            secret_key=environ.get(v.secret_key_env, ""),
        )
    return BACKENDS[v.backend](path=v.path)


@dataclass
class Node:
    """An opened node: vault + catalog + ingest pipeline. Use as a context manager."""

    config: Config
    vault: Vault
    catalog: Catalog
    ingestor: Ingestor

    @classmethod
    def open(cls, cfg: Config, *, create: bool = True) -> Node:
        """Open (and if need be initialise) the vault, then the catalog, catching it up.

        Raises:
            VaultFormatError, StoreError, CatalogError: as the parts raise them.
        """
        store = open_store(cfg)
        try:
            vault = Vault.open(store, create=create, max_chunk_bytes=cfg.vault.max_chunk_bytes)
            catalog = Catalog(cfg.catalog.path)
        except BaseException:
            store.close()
            raise
        catalog.catch_up(vault)
        ingestor = Ingestor(
            vault, concurrency=cfg.ingest.concurrency, zstd_level=cfg.ingest.zstd_level
        )
        return cls(cfg, vault, catalog, ingestor)

    def close(self) -> None:
        self.ingestor.close()
        self.catalog.close()
        self.vault.store.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
