"""FakeHub: an in-memory Hugging Face Hub on loopback, with a separate CDN, for tests.

It speaks the protocol of ``shared/reference/hf-hub.md`` (sections A and B): ``refs``,
``revision/{rev}`` (branch, tag or 40-hex commit; ``?expand=``; ``?blobs=true``), the bare
``/api/{models|datasets}/{id}``, Link-paginated ``commits/{rev}`` and ``tree/{rev}`` (ABSOLUTE
``Link`` with a cursor), and ``HEAD``/``GET`` ``/{id}/resolve/{rev}/{path}`` (datasets under
``/datasets/``). LFS files are answered with a ``302`` to a second aiohttp server, the "CDN",
on another port; the CDN records a violation (and answers 400) if it ever receives an
``Authorization`` header. Both servers honour ``Range`` (206 + ``Content-Range``).

Usage (the ``fake_hub`` fixture starts and stops it, and fails the test on a violation)::

    repo = fake_hub.create_repo("org/model")              # or repo_type="dataset"
    sha = repo.commit({"config.json": b"{}", "model.safetensors": weights})
    repo.tag("v1")
    fake_hub.rate_limit_next(2, retry_after_s=0)          # fault injection
    client = HubClient(fake_hub.endpoint, token=None)

Repo states (each a method of :class:`FakeRepo`): ``gate``, ``disable``, ``delete``,
``make_private``, ``rename``, ``force_push``, ``delete_branch``, and ``restore`` (undo delete,
private, disable). Faults (on :class:`FakeHub`): ``rate_limit_next``, ``fail_next``,
``stall_next``, ``drop_after``, ``corrupt`` (``clear_faults`` drops them all) and the switches
``honour_range``, ``commits_endpoint``, ``redirect_all_to_cdn``. ``requests`` logs every
request (Authorization values redacted); ``downloads()``, ``download_counts()`` and
``api_calls()`` filter it.

Everything is in memory and binds to 127.0.0.1 only. Outside pytest (benchmarks, daemon
subprocess tests) use ``async with FakeHub() as hub:``. The official ``huggingface_hub`` 2.4
client (``HF_ENDPOINT=hub.endpoint``, ``HF_HUB_DISABLE_XET=1``) downloads from it unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlencode

import pytest_asyncio
from aiohttp import web

RepoType = Literal["model", "dataset"]

LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.gguf")
DISABLED_MESSAGE = "Access to this resource is disabled."
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_REDACTED = "<redacted>"


@dataclass(frozen=True)
class FakeFile:
    """One file's bytes and the ids the Hub publishes for it."""

    data: bytes
    oid: str
    """Git blob sha1 (of the LFS pointer for LFS files, as on the Hub)."""
    lfs_sha256: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def etag(self) -> str:
        return self.lfs_sha256 or self.oid


@dataclass(frozen=True)
class FakeCommit:
    id: str
    parent: str | None
    title: str
    date: str
    files: Mapping[str, FakeFile]


@dataclass(frozen=True)
class LoggedRequest:
    """One request either server received (``server`` is ``hub`` or ``cdn``)."""

    server: str
    method: str
    path: str
    """Raw (still percent-encoded) path, without the query."""
    query: str
    headers: dict[str, str]
    """Request headers; an ``Authorization`` value is replaced by ``<redacted>``."""

    @property
    def file_path(self) -> str | None:
        """For a ``resolve`` request, the repo-relative file path; else None."""
        parts = [unquote(p) for p in self.path.split("/")]
        if "resolve" not in parts:
            return None
        return "/".join(parts[parts.index("resolve") + 2 :])


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeRepo:
    """One repo of a :class:`FakeHub`; every method changes it as the real Hub would."""

    def __init__(self, hub: FakeHub, repo_type: RepoType, repo_id: str) -> None:
        self.hub = hub
        self.repo_type: RepoType = repo_type
        self.repo_id = repo_id
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.commits: dict[str, FakeCommit] = {}
        self.card_data: dict[str, Any] = {}
        self.gated: Literal[False, "auto", "manual"] = False
        self.approved_tokens: set[str] = set()
        self.disabled = False
        self.deleted = False
        self.private_token: str | None = None
        """When set, the repo is private: only this token sees it."""
        self.id_in_answers: str | None = None
        """When set, JSON answers carry this ``id`` (a rename the Hub does not redirect)."""

    # -- content ------------------------------------------------------------------------------

    def commit(
        self,
        files: Mapping[str, bytes | None],
        *,
        branch: str = "main",
        message: str | None = None,
        replace: bool = False,
        parent: str | Literal["head"] | None = "head",
    ) -> str:
        """Commit ``files`` on ``branch`` (created if missing) and return the new 40-hex id.

        ``None`` deletes a path. ``replace=True`` makes ``files`` the whole tree instead of
        changes to the parent's tree. ``parent`` is the branch head by default.
        """
        parent_id = self.branches.get(branch) if parent == "head" else parent
        tree: dict[str, FakeFile] = {}
        if parent_id is not None and not replace:
            tree.update(self.commits[parent_id].files)
        for path, data in files.items():
            if data is None:
                tree.pop(path, None)
            else:
                tree[path] = self.hub.make_file(path, data)
        number = next(self.hub.counter)
        title = message or f"commit {number}"
        digest = hashlib.sha1(
            json.dumps(
                [parent_id, title, number, sorted((p, f.oid) for p, f in tree.items())]
            ).encode()
        ).hexdigest()
        date = (_EPOCH + timedelta(minutes=number)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self.commits[digest] = FakeCommit(digest, parent_id, title, date, dict(tree))
        self.branches[branch] = digest
        return digest

    def commit_folder(self, folder: Path, *, branch: str = "main", replace: bool = True) -> str:
        """Commit every file under ``folder`` (relative POSIX paths) as one commit."""
        files: dict[str, bytes | None] = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        return self.commit(files, branch=branch, replace=replace, message="upload folder")

    def force_push(self, files: Mapping[str, bytes | None], *, branch: str = "main") -> str:
        """Rewrite history: replace the head of ``branch`` by a commit on its parent (amend).

        ``files`` are changes to the head's tree (``None`` deletes a path).
        """
        head = self.commits[self.branches[branch]]
        tree: dict[str, bytes | None] = {p: f.data for p, f in head.files.items()}
        tree.update(files)
        return self.commit(
            tree, branch=branch, replace=True, parent=head.parent, message="force push"
        )

    def head(self, branch: str = "main") -> str:
        return self.branches[branch]

    def files(self, revision: str = "main") -> dict[str, FakeFile]:
        commit = self.resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return dict(self.commits[commit].files)

    def resolve(self, revision: str) -> str | None:
        """Branch, tag or known 40-hex commit → commit id; else None."""
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        return revision if revision in self.commits else None

    # -- refs -----------------------------------------------------------------------------------

    def set_branch(self, branch: str, revision: str) -> None:
        """Create or move ``branch`` to ``revision`` (a branch, tag or commit)."""
        commit = self.resolve(revision)
        if commit is None:
            raise KeyError(revision)
        self.branches[branch] = commit

    def delete_branch(self, branch: str) -> None:
        del self.branches[branch]

    def tag(self, name: str, revision: str = "main") -> None:
        commit = self.resolve(revision)
        if commit is None:
            raise KeyError(revision)
        self.tags[name] = commit

    def delete_tag(self, name: str) -> None:
        del self.tags[name]

    # -- states ---------------------------------------------------------------------------------

    def gate(
        self, mode: Literal["auto", "manual"] = "manual", approved: tuple[str, ...] = ()
    ) -> None:
        """Gate the files: anonymous → 401, unapproved token → 403, both ``GatedRepo``."""
        self.gated = mode
        self.approved_tokens = set(approved)

    def ungate(self) -> None:
        self.gated = False

    def disable(self) -> None:
        """Metadata says ``disabled: true``; everything else answers 403 "... disabled."."""
        self.disabled = True

    def delete(self) -> None:
        """The repo answers ``RepoNotFound`` (401 anonymous, 404 with a token)."""
        self.deleted = True

    def restore(self) -> None:
        """Undo ``delete``, ``make_private`` and ``disable``: the repo answers normally again."""
        self.deleted = False
        self.private_token = None
        self.disabled = False

    def make_private(self, owner_token: str | None = None) -> None:
        """Like ``delete`` for everyone but ``owner_token``."""
        self.private_token = owner_token or secrets.token_hex(8)

    def rename(self, new_id: str, *, redirect: bool = True) -> None:
        """Move the repo to ``new_id``.

        ``redirect=True``: the old id answers 307 to the same URL under the new id (the Hub's
        way). ``redirect=False``: the old id keeps answering, with ``id: new_id`` in the JSON.
        """
        if redirect:
            self.hub.rename(self, new_id)
        else:
            self.id_in_answers = new_id

    @property
    def public_id(self) -> str:
        return self.id_in_answers or self.repo_id

    def visible_to(self, token: str | None) -> bool:
        if self.deleted:
            return False
        return self.private_token is None or token == self.private_token


@dataclass
class _Fault:
    status: int | None
    """None: answer normally, after ``delay_s``."""
    scope: str
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeHub:
    """A Hub origin and a CDN on two loopback ports; repos, faults and a request log."""

    def __init__(
        self,
        *,
        tree_page_size: int = 1000,
        commits_page_size: int = 50,
        lfs_threshold_bytes: int = 10 * 1024 * 1024,
    ) -> None:
        self.tree_page_size = tree_page_size
        self.commits_page_size = commits_page_size
        self.lfs_threshold_bytes = lfs_threshold_bytes
        self.lfs_patterns: tuple[str, ...] = LFS_PATTERNS
        self.commits_endpoint = True
        """False: ``/commits/`` answers a bare 404, like a Hub that lacks the endpoint."""
        self.honour_range = True
        """False: a ``Range`` request gets a full 200, so clients must restart from zero."""
        self.redirect_all_to_cdn = False
        """True: every file (not only LFS) is answered with a 302 to the CDN."""
        self.chunked = False
        """True: file bodies are sent with ``Transfer-Encoding: chunked`` and no
        ``Content-Length`` (a streaming proxy or CDN), in pieces of odd sizes."""
        self.requests: list[LoggedRequest] = []
        self.violations: list[str] = []
        self.counter = itertools.count(1)
        self.endpoint = ""
        self.cdn_endpoint = ""
        self._repos: dict[tuple[str, str], FakeRepo] = {}
        self._moved: dict[tuple[str, str], str] = {}
        self._faults: list[_Fault] = []
        self._drops: dict[str, list[int]] = {}
        self._corrupt: set[str] = set()
        self._grown: dict[str, bytes] = {}
        self._cdn_objects: dict[str, tuple[str, FakeFile]] = {}
        self._runners: list[web.AppRunner] = []

    # -- repos ----------------------------------------------------------------------------------

    def create_repo(
        self,
        repo_id: str,
        repo_type: RepoType = "model",
        *,
        license: str | None = "apache-2.0",
        gitattributes: bool = True,
    ) -> FakeRepo:
        """A new repo; like the Hub, its first commit holds a ``.gitattributes`` file."""
        repo = FakeRepo(self, repo_type, repo_id)
        if license is not None:
            repo.card_data["license"] = license
        self._repos[(repo_type, repo_id)] = repo
        repo.commit({".gitattributes": GITATTRIBUTES} if gitattributes else {}, message="init")
        return repo

    def repo(self, repo_id: str, repo_type: RepoType = "model") -> FakeRepo:
        return self._repos[(repo_type, repo_id)]

    def load_folder(self, repo_id: str, folder: Path, repo_type: RepoType = "model") -> FakeRepo:
        """A repo whose main branch holds exactly the files of ``folder`` (``minilm_dir()``)."""
        repo = self.create_repo(repo_id, repo_type, gitattributes=False)
        repo.commit_folder(folder)
        return repo

    def rename(self, repo: FakeRepo, new_id: str) -> None:
        del self._repos[(repo.repo_type, repo.repo_id)]
        self._moved[(repo.repo_type, repo.repo_id)] = new_id
        repo.repo_id = new_id
        self._repos[(repo.repo_type, new_id)] = repo

    def make_file(self, path: str, data: bytes) -> FakeFile:
        is_lfs = len(data) > self.lfs_threshold_bytes or any(
            fnmatchcase(path.rsplit("/", 1)[-1], p) for p in self.lfs_patterns
        )
        if not is_lfs:
            return FakeFile(data, git_blob_sha1(data))
        sha256 = hashlib.sha256(data).hexdigest()
        return FakeFile(data, git_blob_sha1(lfs_pointer(sha256, len(data))), sha256)

    # -- fault injection ------------------------------------------------------------------------

    def rate_limit_next(
        self,
        count: int,
        retry_after_s: int = 0,
        *,
        header: Literal["retry-after", "ratelimit"] = "retry-after",
    ) -> None:
        """The next ``count`` API requests answer 429 (``Retry-After`` or ``RateLimit`` t=)."""
        if header == "retry-after":
            headers = {"Retry-After": str(retry_after_s)}
        else:
            headers = {
                "RateLimit": f'"api";r=0;t={retry_after_s}',
                "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
            }
        self._faults += [_Fault(429, "api", headers) for _ in range(count)]

    def fail_next(
        self, count: int, status: int = 503, *, scope: Literal["api", "resolve", "cdn"] = "api"
    ) -> None:
        """The next ``count`` requests of ``scope`` answer ``status`` (no body)."""
        self._faults += [_Fault(status, scope) for _ in range(count)]

    def stall_next(
        self, count: int, delay_s: float, *, scope: Literal["api", "resolve", "cdn"] = "api"
    ) -> None:
        """The next ``count`` requests of ``scope`` are answered only after ``delay_s``."""
        self._faults += [_Fault(None, scope, delay_s=delay_s) for _ in range(count)]

    def drop_after(self, path: str, nbytes: int, *, times: int = 1) -> None:
        """The next ``times`` bodies of ``path`` (any repo, origin or CDN) stop after ``nbytes``."""
        self._drops.setdefault(path, []).extend([nbytes] * times)

    def corrupt(self, path: str, *, append: bytes = b"") -> None:
        """Serve ``path`` (any repo) with its first byte flipped, same length — or, with
        ``append``, its true bytes followed by those (a longer file than the Hub lists)."""
        if append:
            self._grown[path] = append
        else:
            self._corrupt.add(path)

    # -- request log ----------------------------------------------------------------------------

    def downloads(self, method: str = "GET") -> list[str]:
        """Repo-relative paths of the ``resolve`` requests received, in order."""
        return [
            r.file_path
            for r in self.requests
            if r.server == "hub" and r.method == method and r.file_path is not None
        ]

    def download_counts(self, method: str = "GET") -> Counter[str]:
        """How many ``resolve`` requests each repo-relative path received."""
        return Counter(self.downloads(method))

    def clear_faults(self) -> None:
        """Drop every pending fault (429s, failures, stalls, drops, corruptions)."""
        self._faults.clear()
        self._drops.clear()
        self._corrupt.clear()
        self._grown.clear()

    def api_calls(self) -> list[LoggedRequest]:
        return [r for r in self.requests if r.server == "hub" and r.path.startswith("/api/")]

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeHub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.cdn_endpoint = await self._serve(self._handle_cdn)
        self.endpoint = await self._serve(self._handle_hub)

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    async def _serve(self, handler: Any) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    # -- the Hub origin -------------------------------------------------------------------------

    def _log(self, server: str, request: web.Request) -> str | None:
        headers = dict(request.headers)
        token = None
        if "Authorization" in headers:
            token = headers["Authorization"].removeprefix("Bearer ").strip() or None
            headers["Authorization"] = _REDACTED
        path, _, query = request.raw_path.partition("?")
        self.requests.append(LoggedRequest(server, request.method, path, query, headers))
        return token

    def _take_fault(self, scope: str) -> _Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.scope == scope:
                return self._faults.pop(i)
        return None

    async def _handle_hub(self, request: web.Request) -> web.StreamResponse:
        token = self._log("hub", request)
        raw_path = request.raw_path.partition("?")[0]
        raw = raw_path.split("/")[1:]
        is_api = raw[:1] == ["api"]
        fault = self._take_fault("api" if is_api else "resolve")
        if fault is not None and fault.status is not None:
            return web.Response(status=fault.status, headers=fault.headers)
        if fault is not None:
            await asyncio.sleep(fault.delay_s)
        if is_api:
            if len(raw) < 3 or raw[1] not in ("models", "datasets"):
                return web.Response(status=404, text="Not Found")
            repo_type: RepoType = "model" if raw[1] == "models" else "dataset"
            return self._api(request, repo_type, raw[:2], raw[2:], token)
        if raw[:1] == ["datasets"]:
            return await self._resolve(request, "dataset", raw[:1], raw[1:], token)
        return await self._resolve(request, "model", [], raw, token)

    def _split_id(
        self, repo_type: RepoType, raw: list[str], keywords: tuple[str, ...]
    ) -> tuple[str, list[str]]:
        """Split ``org/name/<keyword>/...`` (or ``name/<keyword>/...``) into id and rest."""
        candidates = [n for n in (2, 1) if len(raw) >= n]
        for n in candidates:
            repo_id = "/".join(unquote(p) for p in raw[:n])
            known = (repo_type, repo_id) in self._repos or (repo_type, repo_id) in self._moved
            if known and (len(raw) == n or raw[n] in keywords):
                return repo_id, raw[n:]
        n = 2 if len(raw) >= 2 and raw[1] not in keywords else 1
        return "/".join(unquote(p) for p in raw[:n]), raw[n:]

    def _lookup(
        self,
        request: web.Request,
        repo_type: RepoType,
        repo_id: str,
        prefix: list[str],
        rest: list[str],
        token: str | None,
    ) -> FakeRepo | web.Response:
        moved_to = self._moved.get((repo_type, repo_id))
        if moved_to is not None:
            parts = [*prefix, *(quote(p, safe="") for p in moved_to.split("/")), *rest]
            query = request.raw_path.partition("?")[2]
            location = "/" + "/".join(parts) + (f"?{query}" if query else "")
            return web.Response(status=307, headers={"Location": location})
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or not repo.visible_to(token):
            return web.json_response(
                {"error": "Repository not found"},
                status=404 if token else 401,
                headers={
                    "X-Error-Code": "RepoNotFound",
                    "X-Error-Message": "Repository not found",
                },
            )
        return repo

    def _api(
        self,
        request: web.Request,
        repo_type: RepoType,
        prefix: list[str],
        raw: list[str],
        token: str | None,
    ) -> web.Response:
        keywords = ("refs", "revision", "tree", "commits", "xet-read-token")
        repo_id, rest = self._split_id(repo_type, raw, keywords)
        found = self._lookup(request, repo_type, repo_id, prefix, rest, token)
        if isinstance(found, web.Response):
            return found
        repo = found
        action = rest[0] if rest else ""
        if action not in ("", "revision", "refs", "tree", "commits"):
            return web.Response(status=404, text="Not Found")
        if repo.disabled and action not in ("", "revision"):
            return _disabled()
        if action == "refs":
            return web.json_response(_refs_json(repo))
        revision = unquote(rest[1]) if len(rest) > 1 else "main"
        commit = repo.resolve(revision)
        if commit is None:
            return web.json_response(
                {"error": f"Invalid rev id: {revision}"},
                status=404,
                headers={"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"},
            )
        if action in ("", "revision"):
            return web.json_response(_revision_json(repo, commit, request))
        if action == "commits":
            if not self.commits_endpoint:
                return web.Response(status=404, text="Not Found")
            return self._commits(repo, commit, request)
        under = "/".join(unquote(p) for p in rest[2:])
        return self._tree(repo, commit, under, request)

    def _page_link(self, request: web.Request, key: str, value: int) -> dict[str, str]:
        query = [(k, v) for k, v in request.query.items() if k != key] + [(key, str(value))]
        path = request.raw_path.partition("?")[0]
        return {"Link": f'<{self.endpoint}{path}?{urlencode(query)}>; rel="next"'}

    def _commits(self, repo: FakeRepo, commit: str, request: web.Request) -> web.Response:
        chain: list[FakeCommit] = []
        current: str | None = commit
        while current is not None:
            chain.append(repo.commits[current])
            current = repo.commits[current].parent
        page = int(request.query.get("p", "0"))
        size = self.commits_page_size
        items = [
            {
                "id": c.id,
                "title": c.title,
                "message": "",
                "date": c.date,
                "authors": [{"user": "fake"}],
            }
            for c in chain[page * size : (page + 1) * size]
        ]
        more = (page + 1) * size < len(chain)
        return web.json_response(
            items, headers=self._page_link(request, "p", page + 1) if more else None
        )

    def _tree(self, repo: FakeRepo, commit: str, under: str, request: web.Request) -> web.Response:
        files = repo.commits[commit].files
        recursive = request.query.get("recursive", "false").lower() in ("true", "1")
        base = f"{under}/" if under else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, f in files.items():
            if not path.startswith(base):
                continue
            parts = path[len(base) :].split("/")
            for depth in range(1, len(parts)):
                directory = base + "/".join(parts[:depth])
                if recursive or depth == 1:
                    entries[directory] = {
                        "type": "directory",
                        "oid": git_blob_sha1(directory.encode()),
                        "size": 0,
                        "path": directory,
                    }
            if recursive or len(parts) == 1:
                entry: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": path}
                if f.lfs_sha256:
                    pointer = lfs_pointer(f.lfs_sha256, f.size)
                    entry["lfs"] = {
                        "oid": f.lfs_sha256,
                        "size": f.size,
                        "pointerSize": len(pointer),
                    }
                entries[path] = entry
        listing = [entries[k] for k in sorted(entries)]
        start = int(request.query.get("cursor", "0"))
        page = listing[start : start + self.tree_page_size]
        end = start + len(page)
        headers = self._page_link(request, "cursor", end) if end < len(listing) else None
        return web.json_response(page, headers=headers)

    async def _resolve(
        self,
        request: web.Request,
        repo_type: RepoType,
        prefix: list[str],
        raw: list[str],
        token: str | None,
    ) -> web.StreamResponse:
        repo_id, rest = self._split_id(repo_type, raw, ("resolve",))
        if not rest or rest[0] != "resolve" or len(rest) < 3:
            return web.Response(status=404, text="Not Found")
        found = self._lookup(request, repo_type, repo_id, prefix, rest, token)
        if isinstance(found, web.Response):
            return found
        repo = found
        if repo.disabled:
            return _disabled()
        if repo.gated and token not in repo.approved_tokens:
            return web.Response(
                status=403 if token else 401,
                headers={
                    "X-Error-Code": "GatedRepo",
                    "X-Error-Message": f"Access to {repo.repo_id} is restricted.",
                },
            )
        revision = unquote(rest[1])
        commit = repo.resolve(revision)
        if commit is None:
            return web.Response(status=404, headers={"X-Error-Code": "RevisionNotFound"})
        path = "/".join(unquote(p) for p in rest[2:])
        f = repo.commits[commit].files.get(path)
        headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
        if f is None:
            headers["X-Error-Code"] = "EntryNotFound"
            return web.Response(status=404, headers=headers)
        headers["ETag"] = f'"{f.etag}"'
        if f.lfs_sha256 or self.redirect_all_to_cdn:
            key = secrets.token_hex(16)
            self._cdn_objects[key] = (path, f)
            signature = secrets.token_hex(16)
            name = quote(path.rsplit("/", 1)[-1])
            headers["Location"] = f"{self.cdn_endpoint}/{key}/{name}?X-Amz-Signature={signature}"
            headers["X-Linked-Etag"] = f'"{f.etag}"'
            headers["X-Linked-Size"] = str(f.size)
            return web.Response(status=302, headers=headers)
        return await self._send_bytes(request, path, f, headers)

    # -- the CDN --------------------------------------------------------------------------------

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        self._log("cdn", request)
        if "Authorization" in request.headers:
            self.violations.append(
                f"CDN received an Authorization header: {request.method} {request.path}"
            )
            return web.Response(status=400, text="Authorization sent to the CDN")
        fault = self._take_fault("cdn")
        if fault is not None and fault.status is not None:
            return web.Response(status=fault.status, headers=fault.headers)
        if fault is not None:
            await asyncio.sleep(fault.delay_s)
        key = request.path.split("/")[1]
        if key not in self._cdn_objects or "X-Amz-Signature" not in request.query:
            return web.Response(status=403, text="bad signature")
        path, f = self._cdn_objects[key]
        return await self._send_bytes(
            request, path, f, {"ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
        )

    async def _send_bytes(
        self, request: web.Request, path: str, f: FakeFile, headers: dict[str, str]
    ) -> web.StreamResponse:
        """Serve ``f`` honouring ``Range`` and the corrupt/drop faults for ``path``."""
        data = f.data
        if path in self._corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\0"
        data += self._grown.get(path, b"")
        status, start = 200, 0
        range_header = request.headers.get("Range", "")
        if range_header.startswith("bytes=") and self.honour_range:
            start = int(range_header.removeprefix("bytes=").split("-", 1)[0])
            if start >= len(data):
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
        body = data[start:]
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_type = "application/octet-stream"
        if self.chunked and request.method != "HEAD":
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(body)
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        drops = self._drops.get(path)
        cut = drops.pop(0) if drops else None
        step = 100_003 if self.chunked else 1 << 20
        for offset in range(0, len(body) if cut is None else min(cut, len(body)), step):
            end = offset + step if cut is None else min(offset + step, cut)
            await resp.write(body[offset:end])
        if cut is not None and cut < len(body):
            assert request.transport is not None
            # The client sees a body shorter than Content-Length, or chunked without its end.
            request.transport.abort()
            return resp
        await resp.write_eof()
        return resp


def _disabled() -> web.Response:
    return web.json_response(
        {"error": DISABLED_MESSAGE}, status=403, headers={"X-Error-Message": DISABLED_MESSAGE}
    )


def _refs_json(repo: FakeRepo) -> dict[str, Any]:
    def refs(names: dict[str, str], kind: str) -> list[dict[str, str]]:
        return [
            {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": commit}
            for name, commit in sorted(names.items())
        ]

    return {
        "branches": refs(repo.branches, "heads"),
        "tags": refs(repo.tags, "tags"),
        "converts": [],
    }


def _revision_json(repo: FakeRepo, commit: str, request: web.Request) -> dict[str, Any]:
    c = repo.commits[commit]
    blobs = request.query.get("blobs", "").lower() == "true"
    siblings: list[dict[str, Any]] = []
    for path, f in sorted(c.files.items()):
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling.update(size=f.size, blobId=f.oid)
            if f.lfs_sha256:
                pointer = lfs_pointer(f.lfs_sha256, f.size)
                sibling["lfs"] = {
                    "sha256": f.lfs_sha256,
                    "size": f.size,
                    "pointerSize": len(pointer),
                }
        siblings.append(sibling)
    license = repo.card_data.get("license")
    full: dict[str, Any] = {
        "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
        "id": repo.public_id,
        "author": repo.public_id.split("/")[0] if "/" in repo.public_id else None,
        "sha": commit,
        "lastModified": c.date,
        "private": repo.private_token is not None,
        "gated": repo.gated,
        "disabled": repo.disabled,
        "tags": [f"license:{license}"] if isinstance(license, str) else [],
        "cardData": dict(repo.card_data),
        "siblings": siblings,
        "createdAt": _EPOCH.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }
    if repo.repo_type == "model":
        full["modelId"] = repo.public_id
    expand = request.query.getall("expand", []) + request.query.getall("expand[]", [])
    if not expand:
        return full
    return {k: v for k, v in full.items() if k in ("_id", "id", *expand)}


@pytest_asyncio.fixture
async def fake_hub() -> AsyncIterator[FakeHub]:
    """A started :class:`FakeHub`; stopped at teardown, which fails on any CDN violation."""
    hub = FakeHub()
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
    assert not hub.violations, f"fake hub violations: {hub.violations}"
