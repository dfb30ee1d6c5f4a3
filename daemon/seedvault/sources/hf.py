"""HfSource: a Hugging Face Hub repository (model or dataset) at one revision, as a ``Source``.

``hf:org/name[@rev]`` and ``hf-dataset:org/name[@rev]`` sources. One observation is a
``revision`` call (the commit and the repo's state) and a paginated ``tree`` listing of that
commit; each selected file becomes an :class:`~seedvault.sources.base.Artifact` whose bytes are
streamed by :meth:`HubClient.stream_file` and checked by the capture pipeline against
``Expected`` (size + sha256 for LFS files, git blob sha1 for the others).

The Hub protocol itself (retries, quota, redirects, error mapping) lives in
:mod:`seedvault.sources.hf_client`; its exceptions are re-exported here. Tree paths go through
:func:`seedvault.manifest.check_path` (re-exported too) before they become artifacts.
"""

from __future__ import annotations

import functools
from fnmatch import fnmatchcase

from seedvault.errors import UpstreamError, UsageError
from seedvault.manifest import check_path
from seedvault.sources.base import Artifact, Expected, Observation
from seedvault.sources.hf_client import HubClient
from seedvault.sources.hf_types import (
    HEX40,
    GitBlobHasher,
    RateLimited,
    RepoDisabled,
    RepoGated,
    RepoMoved,
    RepoType,
    RepoUnavailable,
    RevisionInfo,
    RevisionNotFound,
    git_blob_sha1,
)
from seedvault.sources.spec import hf_source_key, parse_spec

__all__ = [
    "GitBlobHasher",
    "HfSource",
    "HubClient",
    "RateLimited",
    "RepoDisabled",
    "RepoGated",
    "RepoMoved",
    "RepoUnavailable",
    "RevisionNotFound",
    "check_path",
    "git_blob_sha1",
    "parse_hf_spec",
]


_SPEC_KINDS: dict[str, RepoType] = {"hf:": "model", "hf-dataset:": "dataset"}
_ANY_ENDPOINT = "https://huggingface.co"  # parse_spec also builds a key, unused here


def parse_hf_spec(spec: str) -> tuple[RepoType, str, str]:
    """``hf:org/name@rev`` → ``("model", "org/name", "rev")``; ``hf-dataset:`` gives datasets.

    The revision defaults to ``main``; it may be a branch, a tag (slashes allowed, as in
    ``refs/pr/1``) or a 40-hex commit. The syntax is :func:`seedvault.sources.spec.parse_spec`'s,
    so the CLI and the config accept exactly the same specs.

    Raises:
        UsageError: not an ``hf:``/``hf-dataset:`` spec, or a malformed repo id or revision.
    """
    for prefix, repo_type in _SPEC_KINDS.items():
        if spec.startswith(prefix):
            parsed = parse_spec(spec, hub_endpoint=_ANY_ENDPOINT)
            return repo_type, parsed.repo, parsed.revision or "main"
    raise UsageError(f"{spec!r}: expected hf:org/name[@revision] or hf-dataset:org/name[@rev]")


class HfSource:
    """One repo at one revision of one Hub endpoint.

    ``include``/``exclude`` are ``fnmatch`` patterns matched against the whole path (``*``
    also matches ``/``): a file is captured when it matches an include pattern and no exclude
    pattern.
    """

    def __init__(
        self,
        client: HubClient,
        repo_type: RepoType,
        repo_id: str,
        revision: str = "main",
        include: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> None:
        if repo_type not in ("model", "dataset"):
            raise UsageError(f"repo type must be 'model' or 'dataset', not {repo_type!r}")
        self._client = client
        self._repo_type: RepoType = repo_type
        self._repo_id = repo_id
        self._revision = revision
        self._include = list(include) if include is not None else ["*"]
        self._exclude = list(exclude) if exclude is not None else []

    @property
    def key(self) -> str:
        """``hf/<endpoint host>/<model|dataset>/<org>/<name>``, as ``sources.spec`` builds it.

        A port is kept, percent-encoded (``hf/127.0.0.1%3A8470/model/org/name``): two hubs on
        one host never collide.
        """
        return hf_source_key(self._client.endpoint, self._repo_type, self._repo_id)

    @property
    def kind(self) -> str:
        return f"hf-{self._repo_type}"

    @property
    def revision(self) -> str:
        return self._revision

    @property
    def repo_id(self) -> str:
        return self._repo_id

    @property
    def repo_type(self) -> RepoType:
        return self._repo_type

    def selects(self, path: str) -> bool:
        """Whether the include/exclude patterns keep ``path``."""
        return any(fnmatchcase(path, p) for p in self._include) and not any(
            fnmatchcase(path, p) for p in self._exclude
        )

    async def observe(self, info: RevisionInfo | None = None) -> Observation:
        """The commit the revision points at now, the repo's state, and the selected files.

        ``info`` is a revision answer the caller already holds (the mirror asks once per poll
        and pins the commit it learnt from ``refs``); None asks the Hub.

        Raises:
            RepoDisabled: the Hub disabled the repo.
            UnsafePathError: the tree lists a path that could escape the snapshot.
            RepoMoved, RepoUnavailable, RevisionNotFound, RateLimited, UpstreamError: from the
                client.
        """
        client, repo_type, repo_id = self._client, self._repo_type, self._repo_id
        if info is None:
            info = await client.revision_info(repo_type, repo_id, self._revision)
        if info.disabled:
            raise RepoDisabled(repo_id)
        if HEX40.match(self._revision) and info.sha != self._revision:
            raise UpstreamError(f"{repo_id}@{self._revision}: the Hub answered commit {info.sha}")
        entries = await client.tree(repo_type, repo_id, info.sha)
        artifacts = []
        seen: set[str] = set()
        for entry in entries:
            path = check_path(entry.path)
            if path in seen:
                raise UpstreamError(f"{repo_id}@{info.sha}: the tree lists {path!r} twice")
            seen.add(path)
            if not self.selects(path):
                continue
            expected = Expected(
                size=entry.size,
                sha256=entry.lfs_sha256,
                git_sha1=None if entry.lfs_sha256 else entry.oid,
            )
            opener = functools.partial(
                client.stream_file, repo_type, repo_id, info.sha, path, expected
            )
            artifacts.append(
                Artifact(path=path, open=opener, expected=expected, upstream_oid=entry.oid)
            )
        upstream: dict[str, object] = {
            "gated": info.gated,
            "disabled": info.disabled,
            "private": info.private,
            "license": info.license,
            "lastModified": info.last_modified,
        }
        return Observation(
            artifacts=artifacts,
            commit=info.sha,
            upstream={k: v for k, v in upstream.items() if v is not None},
            source_extra={"endpoint": client.endpoint, "repo": repo_id},
        )
