"""Benchmark of retrieval: ``snapshot_download`` from a seedvault node vs a static file server.

Run from the repository root (needs ``make testdata`` for the real weights)::

    .venv/bin/python bench/serve.py                  # ~820 MB in 6 files, 7 rounds, fs + S3
    .venv/bin/python bench/serve.py --size 1G --repeat 5 --no-s3

The same repository (non-repeating bf16 safetensors shards from ``bench/_data.py`` plus the
real small files of all-MiniLM-L6-v2) is served three ways, each server in its own process:

* **static**: a plain aiohttp app answering the same Hub routes (revision, tree, HEAD/GET
  resolve) from the files on disk with ``web.FileResponse`` (sendfile, ranges) — the limit
  for serving, per ``shared/reference/performance.md``;
* **seedvault, fs vault**: ``seedvault.server.serve`` on a node whose vault is a directory;
* **seedvault, S3 vault**: the same on a real SeaweedFS (``weed mini`` started here on
  loopback and stopped at the end; it shares the machine's two cores).

Each run is ``huggingface_hub.snapshot_download`` (8 workers) in a fresh child process into an
empty ``HF_HUB_CACHE``, timed around the call only. A first, untimed round downloads from
every server once and checks every byte (its rates are printed under the table: a node's first
whole read of a file also pays the whole-file BLAKE3 check, which it then remembers for that
file record). Then come the timed rounds, interleaved (static, fs, S3, static, …); the table
shows medians, the ratio to the static server, each server's peak RSS (``VmHWM``) and the CPU
each process spent per GB. Both servers read
warm: the files and the vault were just written, so both come from the page cache (the
SeaweedFS volumes too). Progress goes to stderr, the markdown table to stdout. MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _data
from vault import cpu_of, log, parse_size, seaweedfs

MB = 1_000_000
REPO = "bench/model"
COMMIT = "5eedc0de" * 5
TARGET_RATIO = 0.8
SMALL_FILES = ("config.json", "tokenizer.json", "vocab.txt", "modules.json", "README.md")


# --------------------------------------------------------------------------- the repository


def build_repo(work: Path, size: int, shards: int) -> dict[str, Path]:
    """``{repo path: file on disk}``: ``shards`` bf16 safetensors files of ``size`` in total."""
    files: dict[str, Path] = {}
    source = _data.minilm_path().parent
    for name in SMALL_FILES:
        if (source / name).is_file():
            files[name] = source / name
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        layout = _data.build_tiled(work / name, size // shards, seed=100 + i)
        files[name] = layout.path
    return files


def hub_metadata(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per file: size, sha256, git oid, LFS or not, ETag (the Hub's convention)."""
    from seedvault.manifest import FileEntry
    from seedvault.server.hubfiles import classify, git_blob_oid, lfs_pointer

    out = {}
    for path, disk in files.items():
        data = disk.read_bytes() if disk.stat().st_size < 20 * MB else None
        sha = hashlib.sha256()
        with open(disk, "rb") as fh:
            while block := fh.read(8 << 20):
                sha.update(block)
        size, sha256 = disk.stat().st_size, sha.hexdigest()
        is_lfs = path.endswith(".safetensors")
        oid = git_blob_oid(lfs_pointer(sha256, size) if is_lfs or data is None else data)
        content_oid = git_blob_oid(data) if data is not None else ""
        hub = classify(FileEntry(path, size, "", sha256, oid), lambda _e, c=content_oid: c)
        out[path] = {"disk": str(disk), "size": size, "sha256": sha256, "hub": hub.tree_entry()}
        out[path]["etag"] = hub.etag
    return out


def ingest(files: dict[str, Path], meta: dict[str, dict[str, Any]], cfg: Any) -> None:
    """Archive the repository into the node of ``cfg`` as the Hub mirror would."""
    from seedvault.app import Node
    from seedvault.manifest import FileEntry, Manifest
    from seedvault.sources.spec import hf_source_key

    with Node.open(cfg) as node:
        entries = []
        for path, disk in files.items():
            record = node.ingestor.put_path(str(disk), name=path)
            entries.append(
                FileEntry(path, record.size, record.blake3, record.sha256, meta[path]["hub"]["oid"])
            )
        key = hf_source_key(cfg.hub.endpoint, "model", REPO)
        manifest = Manifest.build(
            kind="hf-model",
            source={
                "key": key,
                "endpoint": cfg.hub.endpoint,
                "repo": REPO,
                "revision": "main",
                "commit": COMMIT,
            },
            captured_at="2026-11-27T10:00:00Z",
            files=entries,
            agent={"software": "seedvault-bench", "version": "0"},
        )
        result = node.vault.commit(manifest)
        node.catalog.add_snapshot(result.snapshot, node.vault.snapshot(result.snapshot))
        found = node.vault.read_ref(key, "main")
        assert found is not None
        node.catalog.set_ref(key, "main", found[0])


def vault_ceiling(cfg: Any) -> float:
    """Seconds to read and verify every file of the repository straight from the vault, all
    files at once (``read_pieces``, as the server reads them), with no HTTP and no client."""
    from concurrent.futures import ThreadPoolExecutor

    from seedvault.app import Node
    from seedvault.server.content import read_pieces

    with Node.open(cfg, create=False) as node, ThreadPoolExecutor(16) as chunks:
        manifest = node.vault.snapshot(
            node.catalog.resolve(node.catalog.snapshots()[0].source_key, "main")
        )

        def read(entry: Any) -> int:
            return sum(len(p) for p in read_pieces(node.vault, entry.blake3, 0, entry.size, chunks))

        started = time.perf_counter()
        with ThreadPoolExecutor(len(manifest.files)) as files:
            list(files.map(read, manifest.files))
        return time.perf_counter() - started


def node_config(work: Path, backend: str, port: int, s3: dict[str, str] | None) -> Any:
    from seedvault.config import CatalogConfig, Config, ServerConfig, VaultConfig

    vault = VaultConfig(backend="fs", path=str(work / "vault-fs"))
    if backend == "s3":
        assert s3 is not None
        vault = VaultConfig(
            backend="s3",
            endpoint_url=s3["SVB_S3_ENDPOINT"],
            bucket="svbench-vault",
            access_key_env="SVB_S3_KEY",
            secret_key_env="SVB_S3_SECRET",
        )
    return Config(
        vault=vault,
        catalog=CatalogConfig(path=str(work / f"catalog-{backend}.sqlite")),
        server=ServerConfig(listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"),
    )


# --------------------------------------------------------------------------- server children


def child_seedvault(task: dict[str, Any]) -> None:
    """``seedvault serve`` on the node the task describes, until SIGTERM."""
    from seedvault.app import Node
    from seedvault.cli import tune_malloc
    from seedvault.logs import setup_logging
    from seedvault.server import run_server

    tune_malloc()  # as `seedvault serve` does
    setup_logging(level="info", stream=sys.stderr, json=True)
    cfg = node_config(Path(task["work"]), task["backend"], task["port"], task.get("s3"))
    with Node.open(cfg, create=False) as node:
        run_server(node)


def child_static(task: dict[str, Any]) -> None:
    """The same Hub routes answered from the files on disk (``web.FileResponse``)."""
    from aiohttp import web

    meta: dict[str, dict[str, Any]] = json.loads(Path(task["meta"]).read_text())
    info = {"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": p} for p in meta]}

    async def revision(request: web.Request) -> web.Response:
        return web.json_response(info)

    async def tree(request: web.Request) -> web.Response:
        return web.json_response([m["hub"] for m in meta.values()])

    async def resolve(request: web.Request) -> web.StreamResponse:
        entry = meta.get(request.match_info["path"])
        if entry is None:
            return web.json_response(
                {"error": "no"},
                status=404,
                headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT},
            )
        headers = {"X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{entry["etag"]}"'}
        return web.FileResponse(entry["disk"], headers=headers)

    app = web.Application()
    app.router.add_get(f"/api/models/{REPO}/revision/{{rev}}", revision)
    app.router.add_get(f"/api/models/{REPO}/tree/{{rev}}", tree)
    app.router.add_get(f"/{REPO}/resolve/{{rev}}/{{path:.+}}", resolve)
    app.router.add_get("/healthz", revision)
    web.run_app(app, host="127.0.0.1", port=task["port"], access_log=None, print=None)


def child_client(task: dict[str, Any]) -> dict[str, Any]:
    """One timed ``snapshot_download`` (env: HF_ENDPOINT, HF_HUB_CACHE set by the parent)."""
    import resource

    from huggingface_hub import snapshot_download

    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    folder = snapshot_download(REPO)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    total = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    if task["verify"]:
        meta = json.loads(Path(task["meta"]).read_text())
        for path, entry in meta.items():
            digest = hashlib.sha256(Path(folder, path).read_bytes()).hexdigest()
            if digest != entry["sha256"]:
                raise SystemExit(f"{path}: downloaded bytes differ from the original")
    return {"seconds": seconds, "bytes": total, "cpu": cpu}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def server(
    kind: str, log_path: Path, env: dict[str, str], **task: Any
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A server child on a free port; yields its URL and process, stops it with SIGTERM."""
    port = free_port()
    task["port"] = port
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", kind, json.dumps(task)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/healthz", timeout=1).read()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not start; see {log_path}")
            time.sleep(0.1)
        yield url, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def download(url: str, cache: Path, meta: Path, verify: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=url,
        HF_HUB_CACHE=str(cache),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_XET="1",
    )
    task = json.dumps({"meta": str(meta), "verify": verify})
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "client", task],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    shutil.rmtree(cache, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"download from {url} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", type=parse_size, default=parse_size("800M"), help="weights in total"
    )
    parser.add_argument("--shards", type=int, default=6, help="safetensors files")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per server")
    parser.add_argument("--no-s3", action="store_true", help="skip the SeaweedFS vault")
    parser.add_argument("--workdir", type=Path, help="parent of the temp dir (default /tmp)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, task = args.child
        children: dict[str, Any] = {
            "seedvault": child_seedvault,
            "static": child_static,
            "client": child_client,
        }
        result = children[kind](json.loads(task))
        if result is not None:
            print(json.dumps(result))
        return
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="seedvault-bench-serve-", dir=args.workdir))
    try:
        with contextlib.ExitStack() as stack:
            s3 = None if args.no_s3 else stack.enter_context(seaweedfs(work))
            run(args, work, s3, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, s3: dict[str, str] | None, started: float) -> None:
    log(f"workdir {work}; building {args.size / MB:,.0f} MB of bf16 weights in {args.shards} files")
    (work / "repo").mkdir()
    files = build_repo(work / "repo", args.size, args.shards)
    meta = hub_metadata(files)
    meta_path = work / "meta.json"
    meta_path.write_text(json.dumps(meta))
    total = sum(m["size"] for m in meta.values())
    backends = ["fs"] + ([] if s3 is None else ["s3"])
    os.environ.update(s3 or {})  # the S3 keys, by the env var names the config gives
    for backend in backends:
        log(f"ingesting into the {backend} vault")
        ingest(files, meta, node_config(work, backend, 0, s3))
    results: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    cpu: dict[str, list[tuple[float, float, float]]] = {}
    rss: dict[str, int] = {}
    store_pid = int(s3["SVB_S3_PID"]) if s3 is not None else None
    ceilings = {b: vault_ceiling(node_config(work, b, 0, s3)) for b in backends}
    # The vaults and the shards were just written: write them back now, or the writeback lands
    # in the first timed rounds (measured: up to 260 MB/s of it during round 1).
    os.sync()
    time.sleep(1)
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        urls = {
            "static": stack.enter_context(
                server("static", work / "static.log", {}, meta=str(meta_path))
            )
        }
        for backend in backends:
            urls[f"seedvault-{backend}"] = stack.enter_context(
                server(
                    "seedvault",
                    work / f"seedvault-{backend}.log",
                    s3 or {},  # the keys travel in the environment, not on the command line
                    work=str(work),
                    backend=backend,
                    s3=None if s3 is None else {"SVB_S3_ENDPOINT": s3["SVB_S3_ENDPOINT"]},
                )
            )
        for round_ in range(args.repeat + 1):
            for name, (url, proc) in urls.items():
                node_before = cpu_of(proc.pid)
                on_s3 = store_pid is not None and name == "seedvault-s3"
                store_before = cpu_of(store_pid) if on_s3 and store_pid is not None else 0.0
                result = download(url, work / "cache", meta_path, verify=round_ == 0)
                node_cpu = cpu_of(proc.pid) - node_before
                store_cpu = cpu_of(store_pid) - store_before if on_s3 and store_pid else 0.0
                if result["bytes"] != total:
                    raise RuntimeError(
                        f"{name}: downloaded {result['bytes']} bytes, expected {total}"
                    )
                rate = total / result["seconds"] / MB
                if round_ == 0:
                    first[name] = result["seconds"]
                    log(f"first download (untimed, every byte checked) {name}: {rate:,.0f} MB/s")
                    continue
                results.setdefault(name, []).append(result["seconds"])
                gb = total / 1e9
                cpu.setdefault(name, []).append((result["cpu"] / gb, node_cpu / gb, store_cpu / gb))
                shares = cpu[name][-1]
                log(
                    f"round {round_} {name}: {rate:,.0f} MB/s; CPU s per GB: client "
                    f"{shares[0]:.2f}, server {shares[1]:.2f}, SeaweedFS {shares[2]:.2f}"
                )
        rss = {name: peak_rss(proc.pid) for name, (_url, proc) in urls.items()}
    print(
        render(results, first, cpu, rss, ceilings, total, args, time.perf_counter() - started, load)
    )


def paired(results: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per server but the static one: its rate over the static server's, round by round."""
    static = results["static"]
    return {
        name: [base / took for base, took in zip(static, seconds, strict=True)]
        for name, seconds in results.items()
        if name != "static"
    }


def render(
    results: dict[str, list[float]],
    first: dict[str, float],
    cpu: dict[str, list[tuple[float, float, float]]],
    rss: dict[str, int],
    ceilings: dict[str, float],
    total: int,
    args: argparse.Namespace,
    seconds: float,
    load: float,
) -> str:
    rate = {name: total / statistics.median(s) / MB for name, s in results.items()}
    labels = {
        "static": "static aiohttp server (`web.FileResponse`, sendfile) from disk",
        "seedvault-fs": "seedvault, fs vault",
        "seedvault-s3": "seedvault, S3 vault (SeaweedFS on the same machine)",
    }
    lines = [
        "## seedvault retrieval benchmark",
        "",
        f"`snapshot_download` (huggingface_hub, 8 workers) of {total / MB:,.0f} MB "
        f"({args.shards} bf16 safetensors shards, non-repeating, + {len(SMALL_FILES)} small "
        f"files), median of {args.repeat} interleaved timed runs after one untimed first download "
        f"from each, {seconds:.0f} s total; "
        f"{os.cpu_count()} cores. MB = 10^6 bytes.",
        "",
        "| server | MB/s (median) | runs MB/s | ratio to static | target | result "
        "| server peak RSS | CPU s per GB: client / server / SeaweedFS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in labels.items():
        if name not in rate:
            continue
        runs = ", ".join(f"{total / s / MB:,.0f}" for s in results[name])
        ratio = rate[name] / rate["static"]
        target, verdict = (
            ("—", "baseline")
            if name == "static"
            else (f"≥ {TARGET_RATIO:.1f}×", "PASS" if ratio >= TARGET_RATIO else "MISS")
        )
        client, node, store = (statistics.median(c[i] for c in cpu[name]) for i in range(3))
        lines.append(
            f"| {label} | {rate[name]:,.0f} | {runs} | {ratio:.2f}× | {target} | {verdict} | "
            f"{rss[name] / 2**20:,.0f} MiB | {client:.2f} / {node:.2f} / "
            f"{store:.2f} |".replace(" / 0.00 |", " / — |")
        )
    lines += [
        "",
        f"- Load average when the timed runs started: {load:.1f} (2 cores; other work on the "
        "machine shows up as spread between runs).",
        "- Vault read ceiling (every file read and verified straight from the vault, all at "
        "once, no HTTP, no client): "
        + ", ".join(f"{b} {total / s / MB:,.0f} MB/s" for b, s in ceilings.items())
        + ". The client itself needs about one core at these rates, which the node's decoding "
        "and verification (and, for S3, boto3 and SeaweedFS) must share on this machine.",
        "- Ratio per round (each round's rate over the static server's in the same round of "
        "the interleaving, so load that changes between rounds falls on both): "
        + "; ".join(
            f"{name} {min(r):.2f}–{max(r):.2f}×, median {statistics.median(r):.2f}×, "
            f"{sum(x >= TARGET_RATIO for x in r)} of {len(r)} rounds ≥ {TARGET_RATIO:.1f}×"
            for name, r in paired(results).items()
        )
        + ".",
        "- First download from each server (untimed, before the rounds; the client checked "
        "every byte): "
        + ", ".join(f"{name} {total / s / MB:,.0f} MB/s" for name, s in first.items())
        + ".",
        "- CPU s per GB served (medians): the client's own process during the timed call, the "
        "server process and the SeaweedFS process during the whole run; 2 cores give at most "
        "2 CPU s per second between them.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
