"""Hugging Face Hub vocabulary shared by the client and the mirror: repo types, the upstream
states a poll can meet (as exceptions), what ``refs``/``revision``/``tree``/``commits`` return,
the git blob id that verifies a file not stored in LFS, and the checked reading of the Hub's
JSON answers into those types (a malformed answer is an :class:`UpstreamError`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from seedvault.errors import UpstreamError

RepoType = Literal["model", "dataset"]
HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class RepoGated(UpstreamError):
    """The repo's files need an approved account.

    ``mode`` is ``auto`` or ``manual`` when known, ``unknown`` when learnt from a refused
    download (the answer does not say; the revision info does).
    """

    def __init__(self, repo_id: str, mode: str) -> None:
        super().__init__(f"{repo_id}: gated ({mode}); the token is missing or not approved")
        self.repo_id = repo_id
        self.mode = mode


class RepoDisabled(UpstreamError):
    """The Hub disabled the repo (legal or terms-of-service reasons)."""

    def __init__(self, repo_id: str) -> None:
        super().__init__(f"{repo_id}: disabled upstream")
        self.repo_id = repo_id


class RepoUnavailable(UpstreamError):
    """The repo was deleted or made private; the Hub answers both identically."""

    def __init__(self, repo_id: str) -> None:
        super().__init__(f"{repo_id}: not found (deleted or private)")
        self.repo_id = repo_id


class RepoMoved(UpstreamError):
    """The repo answers under another id (renamed or transferred); not followed silently."""

    def __init__(self, repo_id: str, new_id: str) -> None:
        super().__init__(f"{repo_id}: moved to {new_id}")
        self.repo_id = repo_id
        self.new_id = new_id


class RevisionNotFound(UpstreamError):
    """The branch, tag or commit does not exist (any more) in the repo."""

    def __init__(self, repo_id: str, revision: str) -> None:
        super().__init__(f"{repo_id}@{revision}: revision not found")
        self.repo_id = repo_id
        self.revision = revision


class RateLimited(UpstreamError):
    """The Hub kept answering 429 after the bounded retries."""

    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(f"{what}: rate limited by the Hub (retry after {retry_after_s}s)")
        self.retry_after_s = retry_after_s


class GitBlobHasher:
    """Incremental git blob id: ``sha1(b"blob <size>\\0" + content)``, the Hub's non-LFS ``oid``.

    The size is part of the header, so it must be known up front (it is: the tree lists it).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._sha1 = hashlib.sha1(b"blob %d\0" % size)

    def update(self, data: bytes) -> None:
        self._sha1.update(data)

    def hexdigest(self) -> str:
        return self._sha1.hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` held in memory (small files, tests)."""
    hasher = GitBlobHasher(len(data))
    hasher.update(data)
    return hasher.hexdigest()


@dataclass(frozen=True)
class Refs:
    """Branches and tags of a repo, each name mapped to its 40-hex commit."""

    branches: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class RevisionInfo:
    """What ``/api/{type}s/{id}/revision/{rev}`` says about a repo at one revision."""

    id: str
    sha: str
    gated: bool | str = False
    """``False``, or the gating mode (``auto`` / ``manual``)."""
    disabled: bool = False
    """The Hub disabled the repo: nothing can be downloaded any more."""
    private: bool = False
    license: str | None = None
    last_modified: str | None = None
    card_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TreeEntry:
    """One file of a tree listing (directories are not listed)."""

    path: str
    """As the Hub sent it: unchecked (see ``hf.check_path``)."""
    size: int
    oid: str
    """Git blob sha1 (of the LFS pointer, for LFS files)."""
    lfs_sha256: str | None = None


@dataclass(frozen=True)
class Commit:
    """One item of a commit listing, newest first."""

    id: str
    title: str = ""
    date: str | None = None


# -- reading answers ------------------------------------------------------------------------------


def answer_str(item: Any, key: str, repo_id: str) -> str:
    value = item.get(key) if isinstance(item, dict) else None
    if not isinstance(value, str):
        raise UpstreamError(f"{repo_id}: answer lacks a string {key!r}")
    return value


def answer_hex40(item: Any, key: str, repo_id: str) -> str:
    value = answer_str(item, key, repo_id)
    if not HEX40.match(value):
        raise UpstreamError(f"{repo_id}: {key!r} is not a 40-hex git id")
    return value


def is_file_entry(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "file"


def tree_entry(item: dict[str, Any], repo_id: str) -> TreeEntry:
    path = answer_str(item, "path", repo_id)
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise UpstreamError(f"{repo_id}: tree entry {path!r} has no valid size")
    lfs = item.get("lfs")
    lfs_sha256 = None
    if isinstance(lfs, dict):
        lfs_sha256 = answer_str(lfs, "oid", repo_id)
        if not HEX64.match(lfs_sha256) or lfs.get("size", size) != size:
            raise UpstreamError(f"{repo_id}: tree entry {path!r} has a malformed lfs object")
    oid = answer_hex40(item, "oid", repo_id)
    return TreeEntry(path=path, size=size, oid=oid, lfs_sha256=lfs_sha256)


def card_license(card: dict[str, Any], tags: Any) -> str | None:
    value = card.get("license")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str) and tag.startswith("license:"):
                return tag.removeprefix("license:")
    return None
