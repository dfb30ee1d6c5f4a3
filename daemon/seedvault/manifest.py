"""Snapshot manifests: the v1 types, canonical JSON (RFC 8785) and safe relative paths.

A manifest is stored as the exact bytes :func:`canonical_json` gives, and its snapshot id is
the BLAKE3 of those bytes; ``seedvault show --json`` prints them unchanged so that ``b3sum``
reproduces the id.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

from seedvault.errors import IntegrityError, UnsafePathError

MANIFEST_VERSION = 1


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) encoding of ``value``: UTF-8, keys sorted by UTF-16 code units, no spaces.

    Only dicts with string keys, lists, strings, ints and bools are accepted: v1 objects hold
    no floats and no nulls (optional keys are absent instead).

    Raises:
        TypeError: a float, None or another unsupported value.
    """
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts).encode("utf-8")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON keys must be strings, got {key!r}")
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"canonical JSON cannot hold {type(value).__name__} values ({value!r})")


def check_path(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else raise UnsafePathError.

    Refused: empty paths, a leading ``/``, empty, ``.`` or ``..`` segments, backslashes, NUL and
    every other control character (Unicode category Cc), so nothing can escape the directory a
    snapshot is exported to, on POSIX or Windows.
    """
    if not isinstance(path, str) or not path:
        raise UnsafePathError("empty file path")
    if path.startswith("/"):
        raise UnsafePathError(f"absolute file path {path!r}")
    if "\\" in path:
        raise UnsafePathError(f"backslash in file path {path!r}")
    if any(unicodedata.category(c) == "Cc" for c in path):
        raise UnsafePathError(f"control character in file path {path!r}")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise UnsafePathError(f"empty, '.' or '..' segment in file path {path!r}")
    return path


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot."""

    path: str
    size: int
    blake3: str
    sha256: str
    upstream_oid: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            "blake3": self.blake3,
            "sha256": self.sha256,
        }
        if self.upstream_oid is not None:
            out["upstream_oid"] = self.upstream_oid
        return out


@dataclass(frozen=True)
class Manifest:
    """A snapshot manifest (v1). ``files`` is sorted by path; paths are unique and safe."""

    kind: str
    source: dict[str, str]
    captured_at: str
    files: tuple[FileEntry, ...]
    upstream: dict[str, Any] = field(default_factory=dict)
    access: str = "public"
    labels: tuple[str, ...] = ()
    trigger: str | None = None
    parent: str | None = None
    agent: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """Top-level keys this version does not know, kept so re-encoding is byte-identical."""

    @property
    def source_key(self) -> str:
        return self.source["key"]

    @property
    def revision(self) -> str:
        return self.source.get("revision", "_")

    @property
    def commit(self) -> str | None:
        return self.source.get("commit")

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def with_parent(self, parent: str | None) -> Manifest:
        return replace(self, parent=parent)

    def same_content(self, other: Manifest) -> bool:
        """Whether two captures observed the same thing (ignoring time, parent, trigger)."""
        return (
            self.kind == other.kind
            and self.source == other.source
            and self.files == other.files
            and self.upstream == other.upstream
            and self.access == other.access
            and self.labels == other.labels
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(
            {
                "manifest": MANIFEST_VERSION,
                "kind": self.kind,
                "source": dict(self.source),
                "captured_at": self.captured_at,
                "files": [f.to_json() for f in self.files],
                "upstream": dict(self.upstream),
                "access": self.access,
                "agent": dict(self.agent),
            }
        )
        if self.labels:
            out["labels"] = list(self.labels)
        if self.trigger is not None:
            out["trigger"] = self.trigger
        if self.parent is not None:
            out["parent"] = self.parent
        return out

    def encode(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def build(cls, *, files: Iterable[FileEntry], **kwargs: Any) -> Manifest:
        """A manifest with ``files`` sorted and every path checked (duplicates refused)."""
        ordered = tuple(sorted(files, key=lambda f: f.path))
        seen: set[str] = set()
        for f in ordered:
            check_path(f.path)
            if f.path in seen:
                raise UnsafePathError(f"duplicate file path {f.path!r}")
            seen.add(f.path)
        return cls(files=ordered, **kwargs)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """Parse stored manifest bytes. Paths are *not* checked here: export checks them.

        Raises:
            IntegrityError: not a v1 manifest.
        """
        try:
            doc = json.loads(data)
            if doc.get("manifest") != MANIFEST_VERSION:
                raise IntegrityError(f"unsupported manifest version {doc.get('manifest')!r}")
            known = {
                "manifest",
                "kind",
                "source",
                "captured_at",
                "files",
                "upstream",
                "access",
                "labels",
                "trigger",
                "parent",
                "agent",
            }
            files = tuple(
                FileEntry(
                    path=f["path"],
                    size=int(f["size"]),
                    blake3=f["blake3"],
                    sha256=f["sha256"],
                    upstream_oid=f.get("upstream_oid"),
                )
                for f in doc["files"]
            )
            return cls(
                kind=doc["kind"],
                source=dict(doc["source"]),
                captured_at=doc["captured_at"],
                files=files,
                upstream=dict(doc.get("upstream", {})),
                access=doc.get("access", "public"),
                labels=tuple(doc.get("labels", ())),
                trigger=doc.get("trigger"),
                parent=doc.get("parent"),
                agent=dict(doc.get("agent", {})),
                extra={k: v for k, v in doc.items() if k not in known},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"not a snapshot manifest: {exc}") from exc


@dataclass(frozen=True)
class FileDiff:
    """Paths added, removed and changed between two manifests."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]


def diff(old: Manifest | None, new: Manifest) -> FileDiff:
    """What changed between ``old`` (None: nothing before) and ``new``."""
    before = {f.path: f.blake3 for f in old.files} if old else {}
    after = {f.path: f.blake3 for f in new.files}
    return FileDiff(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(p for p in after.keys() & before.keys() if after[p] != before[p])),
    )


_SEGMENT_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def key_segment(text: str) -> str:
    """Percent-encode ``text`` into one segment of a source key or ref path.

    Letters, digits, ``.``, ``_`` and ``-`` stay; every other UTF-8 byte (``/``, ``:``, ``%``,
    spaces, …) becomes ``%XX``, and a leading ``.`` becomes ``%2E`` so no segment is hidden or
    means "this/parent directory".
    """
    out = []
    for i, byte in enumerate(text.encode("utf-8")):
        char = chr(byte)
        if char in _SEGMENT_SAFE and not (i == 0 and char == "."):
            out.append(char)
        else:
            out.append(f"%{byte:02X}")
    if not out:
        raise ValueError("an empty string cannot be a key segment")
    return "".join(out)


def unkey_segment(segment: str) -> str:
    """Inverse of :func:`key_segment`."""
    return unquote(segment)
