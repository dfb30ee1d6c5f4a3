"""Source specs as people type them: ``dir:PATH``, ``hf:org/name[@rev]``, ``hf-dataset:…``.

:func:`parse_spec` turns one into a :class:`SourceSpec`: the source key (the ref folder), the
revision asked for (None when the spec names none), and the kind. Any other text is taken as a
source key as ``ls`` prints it (``api/openai``, ``hf/huggingface.co/model/org/name@v1``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from seedvault.errors import UsageError
from seedvault.manifest import key_segment
from seedvault.sources.local import dir_source_key

_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_REV_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source argument."""

    kind: str
    key: str
    revision: str | None
    path: str = ""  # dir: the absolute directory
    repo: str = ""  # hf: org/name
    endpoint: str = ""  # hf: the Hub endpoint


def hf_source_key(endpoint: str, repo_type: str, repo: str) -> str:
    """``hf/<endpoint host>/<model|dataset>/org/name`` (host percent-encoded, port kept)."""
    host = urlsplit(endpoint).netloc or endpoint
    org, name = repo.split("/", 1)
    return f"hf/{key_segment(host)}/{repo_type}/{key_segment(org)}/{key_segment(name)}"


def parse_spec(text: str, *, hub_endpoint: str) -> SourceSpec:
    """Parse a SOURCE argument.

    Raises:
        UsageError: a malformed spec (the message shows the accepted forms).
    """
    if text.startswith("dir:"):
        path = text[4:]
        if not path:
            raise UsageError("dir: needs a path, e.g. dir:/srv/checkpoints/run-7")
        absolute = os.path.abspath(path)
        return SourceSpec("dir", dir_source_key(absolute), None, path=absolute)
    hub_kinds = (("hf:", "model", "hf-model"), ("hf-dataset:", "dataset", "hf-dataset"))
    for prefix, repo_type, kind in hub_kinds:
        if text.startswith(prefix):
            body = text[len(prefix) :]
            repo, _, rev = body.partition("@")
            if not _REPO_RE.match(repo):
                raise UsageError(f"{text!r}: expected {prefix}org/name[@revision]")
            if rev and not _REV_RE.match(rev):
                raise UsageError(f"{text!r}: malformed revision {rev!r}")
            key = hf_source_key(hub_endpoint, repo_type, repo)
            return SourceSpec(kind, key, rev or None, repo=repo, endpoint=hub_endpoint)
    key, _, rev = text.partition("@")
    if not key or key.startswith("/") or ".." in key.split("/") or ":" in key:
        raise UsageError(
            f"{text!r} is not a source: use dir:PATH, hf:org/name[@rev], "
            "hf-dataset:org/name[@rev], or a source key as `seedvault ls` prints it"
        )
    return SourceSpec("key", key, rev or None)
