"""The ``Source`` protocol and the ``Artifact`` type: what a capture reads.

A source is observed once per capture: :meth:`Source.observe` returns an :class:`Observation`
(the upstream commit, metadata, and the list of artifacts). The capture pipeline
(``capture.py``) then streams each artifact it does not already hold into the vault, verifies it
against the artifact's :class:`Expected` hashes, and writes a snapshot manifest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Expected:
    """What the upstream published about a file's bytes; checked after download."""

    size: int | None = None
    sha256: str | None = None
    git_sha1: str | None = None
    """Git blob id: ``sha1(b"blob %d\\0" % size + content)``, for Hub files not in LFS."""


@dataclass(frozen=True)
class Artifact:
    """One file of a capture.

    ``open`` returns an async iterator over the artifact's whole content, from the first byte;
    it resumes by itself after a dropped connection (e.g. with HTTP ``Range``) and raises
    :class:`~seedvault.errors.SourceError` when it cannot.
    """

    path: str
    """Relative POSIX path inside the snapshot (validated by ``manifest.check_path``)."""
    open: Callable[[], AsyncIterator[bytes]]
    expected: Expected = field(default_factory=Expected)
    upstream_oid: str | None = None
    """The upstream's own id for the file (git blob sha1 on the Hub), recorded in the manifest."""


@dataclass(frozen=True)
class Observation:
    """What one look at a source found."""

    artifacts: list[Artifact]
    commit: str | None = None
    """Upstream commit (40 hex on the Hub), or None for sources without one."""
    upstream: dict[str, Any] = field(default_factory=dict)
    """Upstream metadata recorded in the manifest's ``upstream`` object (no floats, no None)."""
    source_extra: dict[str, str] = field(default_factory=dict)
    """Extra keys for the manifest's ``source`` object (``endpoint``, ``repo``, ``path`` …)."""


class Source(Protocol):
    """Something that can be captured."""

    @property
    def key(self) -> str:
        """The source key (ref folder), e.g. ``hf/huggingface.co/model/org/name``."""
        ...

    @property
    def kind(self) -> str:
        """Manifest ``kind``: ``dir``, ``hf-model``, ``hf-dataset``, ``api-models``, …"""
        ...

    @property
    def revision(self) -> str:
        """The revision captured (branch, tag, 40-hex commit), or ``_`` when there is none."""
        ...

    async def observe(self) -> Observation:
        """Look at the source now and list what a capture would store.

        Raises:
            SourceError: the source cannot be read (subclasses say why).
        """
        ...
