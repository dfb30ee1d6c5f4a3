"""HubClient and HfSource against the fake Hub: protocol, robustness, repo states, safety."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from seedvault.errors import UnsafePathError, UpstreamError, UsageError
from seedvault.sources.base import Artifact, Expected
from seedvault.sources.hf import (
    GitBlobHasher,
    HfSource,
    HubClient,
    RateLimited,
    RepoDisabled,
    RepoGated,
    RepoMoved,
    RepoUnavailable,
    RevisionNotFound,
    check_path,
    git_blob_sha1,
    parse_hf_spec,
)
from tests.fakehub import FakeHub
from tests.testdata import minilm_dir

TOKEN = "hf_TestTokenThatMustNeverLeak0123456789"
WEIGHTS = os.urandom(3 * 1024 * 1024 + 17)


def make_client(hub: FakeHub, token: str | None = None, **kwargs: Any) -> HubClient:
    """A client with fast backoff, so retry tests take milliseconds."""
    options: dict[str, Any] = {"backoff_base_s": 0.001, "max_wait_s": 2.0, **kwargs}
    return HubClient(hub.endpoint, token, **options)


@pytest.fixture
async def client(fake_hub: FakeHub) -> AsyncIterator[HubClient]:
    async with make_client(fake_hub) as c:
        yield c


async def read_all(artifact: Artifact) -> bytes:
    return b"".join([piece async for piece in artifact.open()])


def by_path(artifacts: list[Artifact]) -> dict[str, Artifact]:
    return {a.path: a for a in artifacts}


# -- protocol ------------------------------------------------------------------------------------


async def test_refs_revision_and_tree(fake_hub: FakeHub, client: HubClient) -> None:
    """refs lists branches and tags; revision accepts a branch, tag or sha; tree lists files."""
    repo = fake_hub.create_repo("org/model")
    first = repo.commit({"config.json": b"{}", "sub/dir/notes.txt": b"hello"})
    repo.tag("v1")
    second = repo.commit({"config.json": b'{"a": 1}'})
    repo.set_branch("dev", first)
    repo.set_branch("refs/pr/1", second)

    refs = await client.refs("model", "org/model")
    assert refs.branches == {"main": second, "dev": first, "refs/pr/1": second}
    assert refs.tags == {"v1": first}

    for revision, sha in [("main", second), ("v1", first), (first, first), ("refs/pr/1", second)]:
        info = await client.revision_info("model", "org/model", revision)
        assert info.sha == sha
        assert info.license == "apache-2.0"
        assert info.gated is False

    tree = {e.path: e for e in await client.tree("model", "org/model", first)}
    assert set(tree) == {".gitattributes", "config.json", "sub/dir/notes.txt"}
    assert tree["sub/dir/notes.txt"].size == 5
    assert tree["sub/dir/notes.txt"].oid == git_blob_sha1(b"hello")


async def test_tree_over_1000_files_follows_absolute_link(
    fake_hub: FakeHub,
    client: HubClient,
) -> None:
    """A 1,500-file tree comes in two pages joined by an absolute Link; every file is listed."""
    repo = fake_hub.create_repo("org/many", gitattributes=False)
    sha = repo.commit({f"shards/{i:04d}.txt": b"%d" % i for i in range(1500)})

    entries = await client.tree("model", "org/many", sha)

    assert sorted(e.path for e in entries) == [f"shards/{i:04d}.txt" for i in range(1500)]
    tree_calls = [r for r in fake_hub.api_calls() if "/tree/" in r.path]
    assert len(tree_calls) == 2
    assert "cursor=" in tree_calls[1].query


async def test_zero_byte_lfs_and_plain_expectations(fake_hub: FakeHub, client: HubClient) -> None:
    """LFS files expect size + sha256; others size + git blob sha1; an empty file streams b''."""
    fake_hub.lfs_threshold_bytes = 1000
    repo = fake_hub.create_repo("org/m", license=None)
    big_text = b"x" * 1001
    repo.commit({"model.safetensors": WEIGHTS, "empty.txt": b"", "big.txt": big_text})
    observation = await HfSource(client, "model", "org/m").observe()
    files = by_path(observation.artifacts)

    weights = files["model.safetensors"]
    assert weights.expected == Expected(
        size=len(WEIGHTS), sha256=hashlib.sha256(WEIGHTS).hexdigest()
    )
    assert weights.upstream_oid is not None
    assert weights.upstream_oid != weights.expected.sha256
    assert files["big.txt"].expected.sha256 == hashlib.sha256(big_text).hexdigest()

    empty = files["empty.txt"]
    assert empty.expected == Expected(size=0, git_sha1=git_blob_sha1(b""))
    assert empty.upstream_oid == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert await read_all(empty) == b""
    assert await read_all(weights) == WEIGHTS
    assert "license" not in observation.upstream  # None values are omitted


async def test_observation_key_metadata_and_globs(fake_hub: FakeHub, client: HubClient) -> None:
    """key/kind/revision, upstream state and source_extra; include/exclude select paths."""
    repo = fake_hub.create_repo("org/m")
    sha = repo.commit({"a.json": b"1", "sub/b.json": b"2", "c.bin": b"3"})
    source = HfSource(client, "model", "org/m", include=["*.json", "c.bin"], exclude=["sub/*"])

    observation = await source.observe()

    port = fake_hub.endpoint.rsplit(":", 1)[1]
    assert source.key == f"hf/127.0.0.1%3A{port}/model/org/m"
    assert (source.kind, source.revision) == ("hf-model", "main")
    assert observation.commit == sha
    assert sorted(a.path for a in observation.artifacts) == ["a.json", "c.bin"]
    assert observation.upstream == {
        "gated": False,
        "disabled": False,
        "private": False,
        "license": "apache-2.0",
        "lastModified": repo.commits[sha].date,
    }
    assert observation.source_extra == {"endpoint": fake_hub.endpoint, "repo": "org/m"}


async def test_dataset_repo(fake_hub: FakeHub, client: HubClient) -> None:
    """Datasets use /api/datasets/ and /datasets/{id}/resolve/, and their own key and kind."""
    repo = fake_hub.create_repo("org/data", "dataset")
    repo.commit({"train/part-0.csv": b"a,b\n1,2\n"})
    source = HfSource(client, "dataset", "org/data")

    observation = await source.observe()
    data = await read_all(by_path(observation.artifacts)["train/part-0.csv"])

    assert data == b"a,b\n1,2\n"
    assert source.kind == "hf-dataset"
    assert source.key.endswith("/dataset/org/data")
    assert all(r.path.startswith("/api/datasets/org/data/") for r in fake_hub.api_calls())
    assert fake_hub.downloads() == ["train/part-0.csv"]
    resolve = [r.path for r in fake_hub.requests if r.file_path is not None]
    assert resolve == [f"/datasets/org/data/resolve/{observation.commit}/train/part-0.csv"]


# -- robustness ----------------------------------------------------------------------------------


async def test_429_retry_after_is_waited_then_retried(
    fake_hub: FakeHub,
    client: HubClient,
) -> None:
    """Two 429s with Retry-After: 0 are retried; the third call succeeds."""
    fake_hub.create_repo("org/m")
    fake_hub.rate_limit_next(2, retry_after_s=0)

    with capture_logs() as logs:
        refs = await client.refs("model", "org/m")

    assert "main" in refs.branches
    assert len(fake_hub.api_calls()) == 3
    assert [e["event"] for e in logs].count("hub_rate_limited") == 2


async def test_429_ratelimit_header_wait_is_honoured(fake_hub: FakeHub) -> None:
    """``RateLimit: "api";r=0;t=1`` makes the client wait about a second before retrying."""
    fake_hub.create_repo("org/m")
    fake_hub.rate_limit_next(1, retry_after_s=1, header="ratelimit")
    started = time.monotonic()
    async with make_client(fake_hub) as client:
        await client.revision_info("model", "org/m", "main")
    assert time.monotonic() - started >= 0.95


async def test_429_exhausted_raises_rate_limited(fake_hub: FakeHub) -> None:
    """After the bounded retries a persistent 429 raises RateLimited with the advised wait."""
    fake_hub.create_repo("org/m")
    fake_hub.rate_limit_next(10, retry_after_s=7)
    async with make_client(fake_hub, max_wait_s=0.01, max_rate_limit_retries=2) as client:
        with pytest.raises(RateLimited) as caught:
            await client.refs("model", "org/m")
    assert caught.value.retry_after_s == 7
    assert len(fake_hub.api_calls()) == 3


async def test_503_twice_then_success(fake_hub: FakeHub, client: HubClient) -> None:
    """5xx answers are retried with backoff; a persistent one ends in UpstreamError."""
    fake_hub.create_repo("org/m")
    fake_hub.fail_next(2, 503)
    info = await client.revision_info("model", "org/m", "main")
    assert len(fake_hub.api_calls()) == 3
    assert info.sha == fake_hub.repo("org/m").head()

    fake_hub.fail_next(10, 502)
    with pytest.raises(UpstreamError, match="502 after 5 attempts"):
        await client.refs("model", "org/m")


async def test_timeouts_and_refused_connections_are_retried(fake_hub: FakeHub) -> None:
    """A stalled answer times out and is retried; a dead endpoint ends in UpstreamError."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS})
    fake_hub.stall_next(1, 0.5)
    fake_hub.stall_next(1, 0.5, scope="cdn")
    async with make_client(fake_hub, timeout_s=0.1) as client:
        observation = await HfSource(client, "model", "org/m").observe()
        assert await read_all(by_path(observation.artifacts)["model.safetensors"]) == WEIGHTS
    assert len(fake_hub.api_calls()) == 3

    dead_endpoint = "http://127.0.0.1:1"  # nothing listens there
    async with HubClient(dead_endpoint, None, backoff_base_s=0.001, max_attempts=3) as dead:
        with pytest.raises(UpstreamError, match="after 3 attempts"):
            await dead.refs("model", "org/m")


async def test_download_5xx_is_retried(fake_hub: FakeHub, client: HubClient) -> None:
    """A 503 from the origin or the CDN during a download is retried."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS})
    observation = await HfSource(client, "model", "org/m").observe()
    fake_hub.fail_next(1, 503, scope="resolve")
    fake_hub.fail_next(1, 503, scope="cdn")
    assert await read_all(by_path(observation.artifacts)["model.safetensors"]) == WEIGHTS


@pytest.mark.parametrize("path", ["model.safetensors", "notes.txt"])
async def test_dropped_connection_resumes_with_range(
    fake_hub: FakeHub,
    client: HubClient,
    path: str,
) -> None:
    """A body cut mid-way (CDN or origin) resumes with Range: bytes=N-; the bytes are identical."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({path: WEIGHTS})
    observation = await HfSource(client, "model", "org/m").observe()
    fake_hub.drop_after(path, 1_000_000)

    assert await read_all(by_path(observation.artifacts)[path]) == WEIGHTS

    ranges = [r.headers["Range"] for r in fake_hub.requests if "Range" in r.headers]
    assert len(ranges) == (2 if path.endswith(".safetensors") else 1)  # LFS: origin, then CDN
    start = int(ranges[-1].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 1_000_000


async def test_resume_answered_200_restarts_cleanly(fake_hub: FakeHub, client: HubClient) -> None:
    """A server that ignores Range is read again from 0 and the consumer sees no duplicate."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS})
    observation = await HfSource(client, "model", "org/m").observe()
    fake_hub.honour_range = False
    fake_hub.drop_after("model.safetensors", 1_500_000)

    pieces = [p async for p in by_path(observation.artifacts)["model.safetensors"].open()]

    assert b"".join(pieces) == WEIGHTS
    assert max(len(p) for p in pieces) <= 1 << 20


async def test_wrong_bytes_are_not_hidden(fake_hub: FakeHub, client: HubClient) -> None:
    """The stream passes bytes through; the published hashes expose a corrupted file."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b'{"hidden_size": 384}'})
    observation = await HfSource(client, "model", "org/m").observe()
    fake_hub.corrupt("config.json")
    artifact = by_path(observation.artifacts)["config.json"]

    data = await read_all(artifact)
    assert artifact.expected.size is not None
    hasher = GitBlobHasher(artifact.expected.size)
    hasher.update(data)

    assert len(data) == artifact.expected.size
    assert hasher.hexdigest() != artifact.expected.git_sha1


async def test_token_goes_to_hub_but_never_to_cdn(fake_hub: FakeHub) -> None:
    """With a token, API and resolve requests carry it; the CDN redirect is followed without it."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS, "config.json": b"{}"})
    async with make_client(fake_hub, token=TOKEN) as client:
        observation = await HfSource(client, "model", "org/m").observe()
        for artifact in observation.artifacts:
            await read_all(artifact)

    cdn = [r for r in fake_hub.requests if r.server == "cdn"]
    hub = [r for r in fake_hub.requests if r.server == "hub"]
    assert cdn
    assert all("Authorization" not in r.headers for r in cdn)
    assert all(r.headers.get("Authorization") == "<redacted>" for r in hub)
    assert fake_hub.violations == []


async def test_cdn_detector_catches_a_leaked_authorization(fake_hub: FakeHub) -> None:
    """The fake CDN answers 400 and records a violation when it sees Authorization."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{fake_hub.cdn_endpoint}/x", headers={"Authorization": "Bearer x"}) as resp,
    ):
        assert resp.status == 400
    assert len(fake_hub.violations) == 1
    fake_hub.violations.clear()  # this test provoked it on purpose


async def test_api_budget_limits_calls_per_window(fake_hub: FakeHub) -> None:
    """At most requests_per_5min API calls per window; downloads are not counted."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"a.txt": b"a", "b.txt": b"b"})
    async with make_client(fake_hub, requests_per_5min=2, budget_window_s=0.4) as client:
        with capture_logs() as logs:
            observation = await HfSource(client, "model", "org/m").observe()  # 2 API calls
            for artifact in observation.artifacts:
                await read_all(artifact)
            assert [e for e in logs if e["event"] == "hub_budget_wait"] == []
            started = time.monotonic()
            await client.refs("model", "org/m")  # the third call waits for the window
        assert time.monotonic() - started >= 0.2
    assert [e["event"] for e in logs].count("hub_budget_wait") == 1


async def test_token_never_in_logs_or_errors(fake_hub: FakeHub) -> None:
    """Retries, resumes and errors with a token configured never show it."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS})
    fake_hub.rate_limit_next(1)
    fake_hub.fail_next(1, 503)
    fake_hub.drop_after("model.safetensors", 100_000)
    errors: list[str] = []
    with capture_logs() as logs:
        async with make_client(fake_hub, token=TOKEN) as client:
            observation = await HfSource(client, "model", "org/m").observe()
            await read_all(by_path(observation.artifacts)["model.safetensors"])
            repo.delete()
            with pytest.raises(RepoUnavailable) as caught:
                await client.refs("model", "org/m")
            errors.append(str(caught.value))
    assert {"hub_rate_limited", "hub_retry", "hub_download_interrupted"} <= {
        e["event"] for e in logs
    }
    assert TOKEN not in repr(logs)
    assert TOKEN not in repr(errors)
    assert "X-Amz-Signature" not in repr(logs)


# -- repo states ---------------------------------------------------------------------------------


async def test_gated_repo(fake_hub: FakeHub) -> None:
    """Gated: metadata says the mode; downloads raise RepoGated unless the token is approved."""
    repo = fake_hub.create_repo("org/gated")
    repo.commit({"model.safetensors": WEIGHTS})
    repo.gate("manual", approved=("hf_approved",))

    for token in (None, "hf_not_approved"):
        async with make_client(fake_hub, token=token) as client:
            observation = await HfSource(client, "model", "org/gated").observe()
            assert observation.upstream["gated"] == "manual"
            with pytest.raises(RepoGated):
                await read_all(by_path(observation.artifacts)["model.safetensors"])
    async with make_client(fake_hub, token="hf_approved") as client:
        observation = await HfSource(client, "model", "org/gated").observe()
        assert await read_all(by_path(observation.artifacts)["model.safetensors"]) == WEIGHTS


async def test_disabled_repo(fake_hub: FakeHub, client: HubClient) -> None:
    """Disabled: observe, refs and downloads all raise RepoDisabled."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"{}"})
    observation = await HfSource(client, "model", "org/m").observe()
    repo.disable()

    with pytest.raises(RepoDisabled):
        await HfSource(client, "model", "org/m").observe()
    with pytest.raises(RepoDisabled):
        await client.refs("model", "org/m")
    with pytest.raises(RepoDisabled):
        await read_all(observation.artifacts[0])


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("how", ["delete", "make_private"])
async def test_deleted_or_private_repo(fake_hub: FakeHub, token: str | None, how: str) -> None:
    """Deleted or private look alike (401 anonymous, 404 with a token): RepoUnavailable."""
    repo = fake_hub.create_repo("org/m")
    getattr(repo, how)()
    async with make_client(fake_hub, token=token) as client:
        with pytest.raises(RepoUnavailable):
            await HfSource(client, "model", "org/m").observe()
        with pytest.raises(RepoUnavailable):
            await client.refs("model", "org/m")
    assert fake_hub.requests[-1].headers.get("Authorization") == ("<redacted>" if token else None)


async def test_moved_repo_by_redirect(fake_hub: FakeHub, client: HubClient) -> None:
    """A redirect to another id raises RepoMoved(new_id) and is not followed."""
    repo = fake_hub.create_repo("org/old")
    repo.rename("neworg/new")

    with pytest.raises(RepoMoved) as caught:
        await HfSource(client, "model", "org/old").observe()
    assert caught.value.new_id == "neworg/new"
    with pytest.raises(RepoMoved):
        await client.refs("model", "org/old")
    assert len(fake_hub.api_calls()) == 2  # no call under the new id


async def test_moved_repo_by_answered_id(fake_hub: FakeHub, client: HubClient) -> None:
    """An answer whose id differs from the one asked for raises RepoMoved."""
    repo = fake_hub.create_repo("org/old")
    repo.rename("Org/Old", redirect=False)
    with pytest.raises(RepoMoved) as caught:
        await client.revision_info("model", "org/old", "main")
    assert caught.value.new_id == "Org/Old"


async def test_deleted_branch(fake_hub: FakeHub, client: HubClient) -> None:
    """A deleted branch raises RevisionNotFound and disappears from refs."""
    repo = fake_hub.create_repo("org/m")
    repo.set_branch("dev", "main")
    await HfSource(client, "model", "org/m", revision="dev").observe()
    repo.delete_branch("dev")

    with pytest.raises(RevisionNotFound):
        await HfSource(client, "model", "org/m", revision="dev").observe()
    assert "dev" not in (await client.refs("model", "org/m")).branches


async def test_is_ancestor(fake_hub: FakeHub, client: HubClient) -> None:
    """True for a normal advance (across pages), False after a force push, None without data."""
    fake_hub.commits_page_size = 2
    repo = fake_hub.create_repo("org/m")
    first = repo.head()
    for i in range(5):
        repo.commit({"f.txt": b"%d" % i})
    old_head = repo.head()

    assert await client.is_ancestor("model", "org/m", first, old_head) is True
    assert await client.is_ancestor("model", "org/m", old_head, old_head) is True

    new_head = repo.force_push({"f.txt": b"rewritten"})
    assert await client.is_ancestor("model", "org/m", old_head, new_head) is False
    assert await client.is_ancestor("model", "org/m", first, new_head) is True

    async with make_client(fake_hub, max_commit_pages=1) as short:
        assert await short.is_ancestor("model", "org/m", first, new_head) is None
    fake_hub.commits_endpoint = False
    assert await client.is_ancestor("model", "org/m", old_head, new_head) is None


async def test_commits_lists_history_newest_first(fake_hub: FakeHub, client: HubClient) -> None:
    """commits() follows every page of the ancestry."""
    fake_hub.commits_page_size = 3
    repo = fake_hub.create_repo("org/m")
    shas = [repo.head()] + [repo.commit({"f": b"%d" % i}) for i in range(7)]
    listed = [c.id async for c in client.commits("model", "org/m", "main")]
    assert listed == shas[::-1]


# -- path safety and specs -----------------------------------------------------------------------

HOSTILE = [
    "../escape",
    "/etc/passwd",
    "a\\b",
    "a/../../b",
    "a//b",
    "./a",
    "a/\x01b",
    "a/.",
    "a\x7f",
]


@pytest.mark.parametrize("path", HOSTILE)
async def test_hostile_tree_path_is_refused(
    fake_hub: FakeHub, client: HubClient, path: str
) -> None:
    """A tree listing a path that could escape the snapshot fails the observation."""
    repo = fake_hub.create_repo("org/evil")
    repo.commit({path: b"x", "ok.txt": b"fine"})
    with pytest.raises(UnsafePathError):
        await HfSource(client, "model", "org/evil").observe()


@pytest.mark.parametrize("path", [*HOSTILE, "", "a/", "\x85x"])
def test_check_path_refuses(path: str) -> None:
    """check_path refuses absolute, dot/empty segments, backslashes and control characters."""
    with pytest.raises(UnsafePathError):
        check_path(path)


@pytest.mark.parametrize("path", ["a", "1_Pooling/config.json", ".gitattributes", "a/..b/c..", "é"])
def test_check_path_accepts(path: str) -> None:
    """Ordinary relative paths, dot-files and names containing dots pass unchanged."""
    assert check_path(path) == path


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("hf:org/name", ("model", "org/name", "main")),
        ("hf:org/name@v1.0", ("model", "org/name", "v1.0")),
        ("hf:org/name@refs/pr/1", ("model", "org/name", "refs/pr/1")),
        ("hf-dataset:org/data", ("dataset", "org/data", "main")),
        ("hf:org/name@" + "a" * 40, ("model", "org/name", "a" * 40)),
    ],
)
def test_parse_hf_spec(spec: str, parsed: tuple[str, str, str]) -> None:
    """hf:/hf-dataset: specs give type, repo id and revision (main by default)."""
    assert parse_hf_spec(spec) == parsed


@pytest.mark.parametrize(
    "spec",
    ["org/name", "hf:", "hf:org/", "hf:a/b/c", "hf:org/na me", "hf:o/n@a b", "hf:gpt2",
     "dir:/x", "hf:../x", "hf-model:org/name"],
)  # fmt: skip
def test_parse_hf_spec_refuses(spec: str) -> None:
    """Malformed specs raise UsageError."""
    with pytest.raises(UsageError):
        parse_hf_spec(spec)


# -- real data -----------------------------------------------------------------------------------


@pytest.mark.testdata
async def test_real_minilm_repo_streams_byte_identical(
    fake_hub: FakeHub, client: HubClient
) -> None:
    """The real all-MiniLM-L6-v2 repo: 13 files, expectations and streamed bytes match disk."""
    folder = minilm_dir()
    fake_hub.load_folder("sentence-transformers/all-MiniLM-L6-v2", folder)

    observation = await HfSource(
        client, "model", "sentence-transformers/all-MiniLM-L6-v2"
    ).observe()

    files = by_path(observation.artifacts)
    assert len(files) == 13
    assert "1_Pooling/config.json" in files
    assert files["model.safetensors"].expected.size == 90_868_376
    for path, artifact in files.items():
        on_disk = (folder / path).read_bytes()
        sha256 = hashlib.sha256()
        assert artifact.expected.size == len(on_disk)
        blob = GitBlobHasher(len(on_disk))
        async for piece in artifact.open():
            sha256.update(piece)
            blob.update(piece)
        if artifact.expected.sha256:
            assert (
                sha256.hexdigest()
                == artifact.expected.sha256
                == hashlib.sha256(on_disk).hexdigest()
            )
        else:
            assert blob.hexdigest() == artifact.expected.git_sha1 == git_blob_sha1(on_disk)
