"""Hub files: the git blob id, LFS pointer and ETag under which the Hub knows a file.

The Hub names a file's bytes two ways, and ``huggingface_hub`` caches them by that name
(``blobs/<etag>``): a file stored in Git LFS is named by its SHA-256, any other file by its git
blob id, ``sha1(b"blob <size>\\0" + content)``. A manifest records each file's SHA-256 and, for
Hub sources, its ``upstream_oid``: the git blob id of the content, or of the LFS pointer when
the file is in LFS. :func:`classify` tells the two apart:

1. no ``upstream_oid`` (a snapshot that never came from a Hub) → served as an LFS file, so the
   ETag is the SHA-256 the manifest has and nothing needs reading;
2. ``upstream_oid`` equals the blob id of the canonical LFS pointer for this SHA-256 and size →
   LFS (exact; needs no read);
3. larger than :data:`LFS_THRESHOLD_BYTES` → LFS (the Hub refuses such files outside LFS);
4. otherwise the git blob id of the content decides: equal → a plain git file, else LFS with a
   pointer written in some non-canonical way. Only this case reads the file (the caller
   supplies that id, computed once and cached by BLAKE3).

This module is pure: no I/O, no aiohttp. The server and ``export --layout hf-cache`` share it,
so a file has the same name in a user's cache whichever way it arrived.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from seedvault.manifest import FileEntry

LFS_THRESHOLD_BYTES = 10 * 1024 * 1024
"""Files above this size are always in LFS on the Hub."""

LFS_POINTER_FORMAT = (
    "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
)

REPO_FOLDER_SEPARATOR = "--"


def git_blob_oid(data: bytes) -> str:
    """The git blob id of ``data``: ``sha1(b"blob <len>\\0" + data)``."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def git_blob_hasher(size: int) -> Any:
    """A SHA-1 object already fed the git blob header for ``size`` bytes (update with content)."""
    return hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The canonical Git LFS pointer file of a file with this SHA-256 and size."""
    return LFS_POINTER_FORMAT.format(sha256=sha256, size=size).encode("ascii")


def needs_content_oid(entry: FileEntry) -> bool:
    """Whether :func:`classify` needs the git blob id of ``entry``'s content (case 4)."""
    if entry.upstream_oid is None or entry.size > LFS_THRESHOLD_BYTES:
        return False
    return entry.upstream_oid != git_blob_oid(lfs_pointer(entry.sha256, entry.size))


@dataclass(frozen=True)
class HubFile:
    """One file of a snapshot as the Hub describes it."""

    path: str
    size: int
    blake3: str
    oid: str
    """The git blob id in the repository: of the content, or of the LFS pointer."""
    lfs_sha256: str | None
    """The SHA-256 for an LFS file, None for a plain git file."""
    pointer_size: int | None

    @property
    def etag(self) -> str:
        """The ETag the Hub serves (unquoted): SHA-256 for LFS files, else the git blob id."""
        return self.lfs_sha256 if self.lfs_sha256 is not None else self.oid

    def tree_entry(self) -> dict[str, Any]:
        """The entry of the ``/tree`` listing (``lfs.oid`` is the SHA-256 there)."""
        out: dict[str, Any] = {
            "type": "file",
            "path": self.path,
            "size": self.size,
            "oid": self.oid,
        }
        if self.lfs_sha256 is not None:
            out["lfs"] = {
                "oid": self.lfs_sha256,
                "size": self.size,
                "pointerSize": self.pointer_size,
            }
        return out

    def sibling(self, blobs: bool) -> dict[str, Any]:
        """The entry of ``siblings`` in repo info (``lfs.sha256`` there, with ``?blobs=true``)."""
        out: dict[str, Any] = {"rfilename": self.path}
        if blobs:
            out["size"] = self.size
            out["blobId"] = self.oid
            if self.lfs_sha256 is not None:
                out["lfs"] = {
                    "sha256": self.lfs_sha256,
                    "size": self.size,
                    "pointerSize": self.pointer_size,
                }
        return out

    def tree_cache_entry(self) -> dict[str, Any]:
        """The entry of ``huggingface_hub``'s on-disk tree cache (``trees/<commit>.json``)."""
        out: dict[str, Any] = {"size": self.size, "blob_id": self.oid}
        if self.lfs_sha256 is not None:
            out["lfs_sha256"] = self.lfs_sha256
            out["lfs_size"] = self.size
        return out


def classify(entry: FileEntry, content_oid: Callable[[FileEntry], str] | None = None) -> HubFile:
    """The Hub's view of ``entry`` (see the module docstring for the rules).

    ``content_oid`` returns the git blob id of the entry's content; it is called only when
    :func:`needs_content_oid` is true (without it such a file is taken as a plain git file).
    """
    pointer = lfs_pointer(entry.sha256, entry.size)
    pointer_oid = git_blob_oid(pointer)

    def lfs(oid: str) -> HubFile:
        return HubFile(entry.path, entry.size, entry.blake3, oid, entry.sha256, len(pointer))

    upstream = entry.upstream_oid
    if upstream is None:
        return lfs(pointer_oid)
    if upstream == pointer_oid or entry.size > LFS_THRESHOLD_BYTES:
        return lfs(upstream)
    if content_oid is not None and content_oid(entry) != upstream:
        return lfs(upstream)
    return HubFile(entry.path, entry.size, entry.blake3, upstream, None, None)


def git_tree_oids(files: Iterable[HubFile]) -> dict[str, str]:
    """The git tree id of every directory (``""`` is the root) holding ``files``.

    Computed as git does (entries sorted by name, a directory sorting as ``name/``), with every
    file taken as mode 100644: the Hub's tree ids for the same files, unless a file is
    executable or a symlink upstream. The listing needs an id for each directory entry.
    """
    children: dict[str, dict[str, tuple[bool, str]]] = {"": {}}
    for f in files:
        parts = f.path.split("/")
        for depth in range(1, len(parts)):
            parent, name = "/".join(parts[: depth - 1]), parts[depth - 1]
            children.setdefault(parent, {})[name] = (True, "")
            children.setdefault("/".join(parts[:depth]), {})
        parent = "/".join(parts[:-1])
        children.setdefault(parent, {})[parts[-1]] = (False, f.oid)
    oids: dict[str, str] = {}
    for directory in sorted(children, key=lambda d: d.count("/") + (d != ""), reverse=True):
        body = bytearray()
        entries = children[directory]
        for name in sorted(entries, key=lambda n: n + "/" if entries[n][0] else n):
            is_dir, oid = entries[name]
            if is_dir:
                oid = oids[f"{directory}/{name}" if directory else name]
            mode = b"40000" if is_dir else b"100644"
            body += mode + b" " + name.encode("utf-8") + b"\0" + bytes.fromhex(oid)
        digest = hashlib.sha1(b"tree %d\0" % len(body), usedforsecurity=False)
        digest.update(body)
        oids[directory] = digest.hexdigest()
    return oids


def repo_folder_name(repo_type: str, repo_id: str) -> str:
    """``models--org--name``: a repository's folder in the Hugging Face cache."""
    return REPO_FOLDER_SEPARATOR.join([f"{repo_type}s", *repo_id.split("/")])
