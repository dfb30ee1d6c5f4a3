"""Source specs as people type them: ``dir:PATH``, ``hf:org/name[@rev]``, ``hf-dataset:…``.

:func:`parse_spec` turns one into a :class:`SourceSpec`: the source key (the ref folder), the
revision asked for (None when the spec names none), and the kind. Given the config's watches,
the id of a ``[[watch.models_api]]``, ``[[watch.page]]`` or ``[[watch.probes]]`` names that
watch's source (``openai`` → ``api/openai``), and so does its source key; an id that several
kinds of watch share is refused, naming their keys. Any other text is taken as a source key as
``ls`` prints it (``api/openai``, ``hf/huggingface.co/model/org/name@v1``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from seedvault.errors import UsageError
from seedvault.manifest import key_segment
from seedvault.sources.local import dir_source_key

if TYPE_CHECKING:
    from seedvault.config import WatchConfig

_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_REV_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
_HUB_KEY_RE = re.compile(r"^hf/[^/]+/(model|dataset)/[^/]+/[^/]+$")
HUB_KINDS = ("hf-model", "hf-dataset")
WATCH_KINDS = {"api-models": "[[watch.models_api]]", "page": "[[watch.page]]",
               "api-probes": "[[watch.probes]]"}  # fmt: skip


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source argument."""

    kind: str
    key: str
    revision: str | None
    path: str = ""  # dir: the absolute directory
    repo: str = ""  # hf: org/name
    endpoint: str = ""  # hf: the Hub endpoint
    watch: str = ""  # api-models, page, api-probes: the watch id
    models: tuple[str, ...] = ()  # api-probes: the models named (one key each)
    keys: tuple[str, ...] = ()  # api-probes: those keys (``key`` is their folder if several)

    @property
    def source_keys(self) -> tuple[str, ...]:
        """Every source key the spec names (several for a probes watch of several models)."""
        return self.keys or (self.key,)

    @property
    def hub(self) -> bool:
        """A Hub repo, as ``hf:``/``hf-dataset:`` or as its key: no ``@`` means ``@main``."""
        return self.kind in HUB_KINDS or bool(_HUB_KEY_RE.match(self.key))


def hf_source_key(endpoint: str, repo_type: str, repo: str) -> str:
    """``hf/<endpoint host>/<model|dataset>/org/name`` (host percent-encoded, port kept)."""
    host = urlsplit(endpoint).netloc or endpoint
    org, name = repo.split("/", 1)
    return f"hf/{key_segment(host)}/{repo_type}/{key_segment(org)}/{key_segment(name)}"


def parse_spec(text: str, *, hub_endpoint: str, watches: WatchConfig | None = None) -> SourceSpec:
    """Parse a SOURCE argument (``watches``: the config's, to know watch ids and keys).

    Raises:
        UsageError: a malformed spec (the message shows the accepted forms), or the id of
            more than one kind of watch (the message names their keys).
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
    if watches is not None:
        found = watch_specs(key, watches)
        if len(found) > 1:
            named = ", ".join(f"{s.key} ({WATCH_KINDS[s.kind]})" for s in found)
            raise UsageError(
                f"{key!r} is the id of more than one watch: name its source by key: {named}"
            )
        if found:
            spec = found[0]
            return SourceSpec(
                spec.kind, spec.key, rev or None, watch=spec.watch, models=spec.models,
                keys=spec.keys,
            )  # fmt: skip
    if not key or key.startswith("/") or ".." in key.split("/") or ":" in key:
        raise UsageError(
            f"{text!r} is not a source: use dir:PATH, hf:org/name[@rev], "
            "hf-dataset:org/name[@rev], a watch id, or a source key as `seedvault ls` prints it"
        )
    return SourceSpec("key", key, rev or None)


def watch_specs(text: str, watches: WatchConfig) -> list[SourceSpec]:
    """The sources of the configured watches that ``text`` names: by watch id (``openai``; a
    probes watch names one source per model) or by source key (``api/openai``,
    ``probes/<id>/<model>``). Several for an id that more than one kind of watch uses."""
    if not (watches.models_api or watches.page or watches.probes):
        return []
    # only a node that watches providers loads their modules
    from seedvault.sources.models_api import models_source_key
    from seedvault.sources.pages import page_source_key
    from seedvault.sources.probes import probes_source_key

    found: list[SourceSpec] = []
    for api in watches.models_api:
        key = models_source_key(api.id)
        if text in (api.id, key):
            found.append(SourceSpec("api-models", key, None, watch=api.id))
    for page in watches.page:
        key = page_source_key(page.id)
        if text in (page.id, key):
            found.append(SourceSpec("page", key, None, watch=page.id))
    for probes in watches.probes:
        keys = {model: probes_source_key(probes.id, model) for model in probes.models}
        named = list(keys) if text == probes.id else [m for m, k in keys.items() if k == text]
        if named:
            folder = f"probes/{key_segment(probes.id)}"
            key = keys[named[0]] if len(named) == 1 else folder
            chosen = tuple(keys[m] for m in named)
            found.append(
                SourceSpec("api-probes", key, None, watch=probes.id, models=tuple(named),
                           keys=chosen)
            )  # fmt: skip
    return found
