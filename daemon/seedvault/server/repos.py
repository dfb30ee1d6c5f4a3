"""Archived repositories: which snapshot the server serves for a Hub repo id and revision.

A Hub request names ``org/name`` (a model or a dataset) and a revision. :class:`Repos` answers
from the catalog, following the contract ("Sources, keys and refs" in the architecture):

* the repo id maps to the ``hf`` sources holding that repo: the one of the configured
  ``[hub] endpoint`` first, then the others, most recently captured first (a node may mirror
  several hubs, or other nodes);
* a 40-hex revision selects the snapshot whose commit it is, forever (also after the upstream
  repo or branch is gone); a branch or tag name selects that ref's snapshot, i.e. the newest
  archived commit of it; no revision means ``main``, else the newest snapshot.

Every method is synchronous and may block (SQLite, the vault's store): the server calls them in
its worker threads. Manifests are immutable, so they are cached by snapshot id; the list of
sources is re-read from the catalog at most every ``index_ttl_s`` seconds.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

from seedvault.app import Node
from seedvault.errors import IntegrityError, NotInVault, UsageError
from seedvault.manifest import FileEntry, Manifest, unkey_segment
from seedvault.server.hubfiles import (
    HubFile,
    classify,
    git_blob_hasher,
    git_tree_oids,
    needs_content_oid,
)
from seedvault.sources.spec import hf_source_key

REPO_TYPES = ("model", "dataset")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION_RE = re.compile(r"[A-Za-z0-9._/-]{1,200}")
_SHA_RE = re.compile(r"[0-9a-f]{40}")
CONTENT_OID_CACHE_ENTRIES = 200_000
CONTENT_OID_THREADS = 8
MANIFEST_CACHE_ENTRIES = 64


class RepoNotFound(NotInVault):
    """No archived source holds this repo."""


class RevisionNotFound(NotInVault):
    """The repo is archived, but not at this revision."""


def valid_repo_id(repo_id: str) -> bool:
    """``org/name`` with Hub-style names (no ``..`` or ``--``, no traversal)."""
    parts = repo_id.split("/")
    return len(parts) == 2 and all(
        _NAME_RE.fullmatch(p) and ".." not in p and "--" not in p for p in parts
    )


def valid_revision(revision: str) -> bool:
    """A branch, tag or commit name: ASCII letters, digits, ``._/-``; no empty/./.. segment."""
    if not _REVISION_RE.fullmatch(revision):
        return False
    return all(seg not in ("", ".", "..") for seg in revision.split("/"))


def parse_hf_key(source_key: str) -> tuple[str, str] | None:
    """``hf/<host>/<type>/<org>/<name>`` → (type, ``org/name``); None for other keys."""
    parts = source_key.split("/")
    if len(parts) != 5 or parts[0] != "hf" or parts[2] not in REPO_TYPES:
        return None
    return parts[2], f"{unkey_segment(parts[3])}/{unkey_segment(parts[4])}"


@dataclass
class ServedSnapshot:
    """A snapshot as served for one repo: its manifest, files by path, and Hub commit."""

    snapshot_id: str
    manifest: Manifest
    repo_type: str
    repo_id: str
    files: dict[str, FileEntry] = field(init=False)

    def __post_init__(self) -> None:
        self.files = {f.path: f for f in self.manifest.files}

    @property
    def commit(self) -> str:
        """The upstream commit (40 hex); a snapshot without one is named by its id's prefix."""
        commit = self.manifest.commit
        return commit if commit and _SHA_RE.fullmatch(commit) else self.snapshot_id[:40]

    @property
    def public(self) -> bool:
        return self.manifest.access == "public"

    @cached_property
    def paths(self) -> list[str]:
        return sorted(self.files)

    @cached_property
    def directories(self) -> set[str]:
        """Every directory holding a file (``""`` excluded)."""
        out: set[str] = set()
        for path in self.files:
            parts = path.split("/")
            out.update("/".join(parts[:i]) for i in range(1, len(parts)))
        return out


class ContentOids:
    """Git blob ids of file contents, computed once per file and kept by BLAKE3 (bounded)."""

    def __init__(self, node: Node, max_entries: int = CONTENT_OID_CACHE_ENTRIES) -> None:
        self._node = node
        self._max = max_entries
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, blake3: str) -> bool:
        with self._lock:
            return blake3 in self._cache

    def __call__(self, entry: FileEntry) -> str:
        with self._lock:
            if entry.blake3 in self._cache:
                self._cache.move_to_end(entry.blake3)
                return self._cache[entry.blake3]
        digest = git_blob_hasher(entry.size)
        for piece in self._node.vault.iter_file(entry.blake3):
            digest.update(piece)
        oid = str(digest.hexdigest())
        with self._lock:
            self._cache[entry.blake3] = oid
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return oid


class Repos:
    """Resolves Hub repo ids and revisions to archived snapshots (thread-safe, blocking)."""

    def __init__(self, node: Node, *, index_ttl_s: float = 2.0) -> None:
        self._node = node
        self._ttl = index_ttl_s
        self._lock = threading.Lock()
        self._index: dict[tuple[str, str], list[str]] = {}
        self._index_at = -1e9
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._tree_oids: OrderedDict[str, dict[str, str]] = OrderedDict()
        self.content_oids = ContentOids(node)
        self._oid_pool = ThreadPoolExecutor(CONTENT_OID_THREADS, thread_name_prefix="content-oid")

    def close(self) -> None:
        self._oid_pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ sources

    def _refresh(self) -> dict[tuple[str, str], list[str]]:
        with self._lock:
            if time.monotonic() - self._index_at < self._ttl:
                return self._index
        newest: dict[tuple[str, str], dict[str, str]] = {}
        for source_key, _rev, _snap, _commit, updated in self._node.catalog.refs():
            parsed = parse_hf_key(source_key)
            if parsed is None:
                continue
            keys = newest.setdefault(parsed, {})
            keys[source_key] = max(keys.get(source_key, ""), updated)
        index = {
            repo: [k for k, _ in sorted(keys.items(), key=lambda kv: kv[1], reverse=True)]
            for repo, keys in newest.items()
        }
        with self._lock:
            self._index, self._index_at = index, time.monotonic()
        return index

    def candidates(self, repo_type: str, repo_id: str) -> list[str]:
        """Source keys holding the repo: the configured hub's first, then newest first."""
        keys = list(self._refresh().get((repo_type, repo_id), []))
        preferred = hf_source_key(self._node.config.hub.endpoint, repo_type, repo_id)
        if preferred in keys:
            keys.remove(preferred)
            keys.insert(0, preferred)
        return keys

    def refs(self, repo_type: str, repo_id: str) -> list[tuple[str, str, str]]:
        """(revision, commit, updated) of every archived ref of the repo's first source.

        A revision is the name the watch asked for — a bare branch or tag name, a full ref
        (``refs/tags/v1``, ``refs/pr/1``) or a 40-hex commit — except that a bare name whose
        snapshot recorded the Hub's full ref (``upstream.ref``, captures since 2026-11-28) is
        given as that full ref, so a tag watched as ``v1.0`` is known as ``refs/tags/v1.0``.
        """
        keys = self.candidates(repo_type, repo_id)
        if not keys:
            raise RepoNotFound(f"{repo_type} {repo_id} is not archived on this node")
        found = []
        for key, rev, snap, commit, updated in self._node.catalog.refs():
            if key != keys[0]:
                continue
            if not rev.startswith("refs/"):
                try:
                    recorded = self.manifest(snap).upstream.get("ref")
                except (NotInVault, IntegrityError):
                    recorded = None
                if isinstance(recorded, str) and recorded in (
                    f"refs/heads/{rev}",
                    f"refs/tags/{rev}",
                ):
                    rev = recorded
            found.append((rev, commit or snap[:40], updated))
        return found

    # ------------------------------------------------------------------ snapshots

    def resolve(self, repo_type: str, repo_id: str, revision: str | None) -> ServedSnapshot:
        """The snapshot served for ``repo_id`` at ``revision`` (None: ``main``, else newest).

        A branch or tag name the catalog does not know is looked up in the vault too, only to
        tell a damaged ref (skipped when the catalog was built) from a missing one; so is
        ``main`` before a request without a revision falls back to the newest snapshot.

        Raises:
            RepoNotFound: no source holds the repo.
            RevisionNotFound: none holds it at that revision.
            IntegrityError: the snapshot's manifest, or the ref of that name, is damaged.
            NotInVault: the catalog names a snapshot the vault lacks.
        """
        keys = self.candidates(repo_type, repo_id)
        if not keys:
            raise RepoNotFound(f"{repo_type} {repo_id} is not archived on this node")
        wanted: list[str | None] = ["main", None] if revision is None else [revision]
        for rev in wanted:
            if rev is None:  # no main indexed: a damaged one is an error, not "use the newest"
                for key in keys:
                    self._node.vault.read_ref(key, "main")  # raises IntegrityError if damaged
            for key in keys:
                try:
                    sid = self._node.catalog.resolve(key, rev)
                except UsageError:
                    continue
                return ServedSnapshot(sid, self.manifest(sid), repo_type, repo_id)
        if revision is not None and not _SHA_RE.fullmatch(revision):
            for key in keys:
                self._node.vault.read_ref(key, revision)  # raises IntegrityError if damaged
        raise RevisionNotFound(f"{repo_id} is not archived at revision {revision}")

    def manifest(self, snapshot_id: str) -> Manifest:
        """The manifest of a snapshot (cached; manifests never change).

        Raises:
            NotInVault, IntegrityError: as :meth:`Vault.snapshot` raises them.
        """
        with self._lock:
            found = self._manifests.get(snapshot_id)
            if found is not None:
                self._manifests.move_to_end(snapshot_id)
                return found
        manifest = self._node.vault.snapshot(snapshot_id)
        with self._lock:
            self._manifests[snapshot_id] = manifest
            while len(self._manifests) > MANIFEST_CACHE_ENTRIES:
                self._manifests.popitem(last=False)
        return manifest

    # ------------------------------------------------------------------ files

    def hub_file(self, entry: FileEntry) -> HubFile:
        """The Hub's view of one file (may read it once to learn its git blob id)."""
        return classify(entry, self.content_oids)

    def hub_files(self, entries: list[FileEntry]) -> list[HubFile]:
        """The Hub's view of many files; the content reads some need run in parallel."""
        todo = {
            e.blake3: e
            for e in entries
            if needs_content_oid(e) and not self.content_oids.known(e.blake3)
        }
        if len(todo) > 1:
            list(self._oid_pool.map(self.content_oids, todo.values()))
        return [classify(e, self.content_oids) for e in entries]

    def tree_oids(self, snap: ServedSnapshot) -> dict[str, str]:
        """Git tree ids of the snapshot's directories (cached per snapshot)."""
        with self._lock:
            found = self._tree_oids.get(snap.snapshot_id)
        if found is not None:
            return found
        # a file's git blob id does not depend on whether it is in LFS: nothing to read here
        oids = git_tree_oids(classify(e) for e in snap.manifest.files)
        with self._lock:
            self._tree_oids[snap.snapshot_id] = oids
            while len(self._tree_oids) > MANIFEST_CACHE_ENTRIES:
                self._tree_oids.popitem(last=False)
        return oids
