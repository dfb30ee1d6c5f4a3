"""Export: write a snapshot's files to a directory, verified, never outside it.

Two layouts: :func:`export_plain` writes the files as they are; :func:`export_hf_cache` writes
the Hugging Face cache layout (blobs named by the Hub's ETag, snapshot symlinks, refs), so the
folder can be carried to an offline machine and used as ``HF_HUB_CACHE``.

Each file is streamed from the vault (every chunk verified, the whole file checked against its
BLAKE3) into a hidden partial file beside its final name and renamed into place only when
complete, so a damaged file never appears under its final name. Paths are checked again here
(a manifest is untrusted input): nothing is written outside the target directory, also not
through a symbolic link that already exists inside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from seedvault import cas
from seedvault.errors import IntegrityError, NotInVault, UnsafePathError, UsageError
from seedvault.manifest import FileEntry, Manifest, check_path
from seedvault.server.hubfiles import (
    HubFile,
    classify,
    git_blob_hasher,
    needs_content_oid,
    repo_folder_name,
)
from seedvault.vault import Vault


def _inside(root: Path, target: Path) -> bool:
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(target.parent)
    return real_parent == real_root or real_parent.startswith(real_root + os.sep)


def export_plain(
    vault: Vault,
    manifest: Manifest,
    dest: str | os.PathLike[str],
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write every file of ``manifest`` under ``dest``; returns the paths written.

    Raises:
        UnsafePathError: a manifest path could escape ``dest`` (checked before writing).
        IntegrityError: a file is damaged (its partial file is removed; files exported before
            it stay, each complete and verified).
    """
    root = Path(dest).absolute()
    for f in manifest.files:
        check_path(f.path)
    root.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for f in manifest.files:
        target = root / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _inside(root, target) or target.is_symlink():
            raise UnsafePathError(f"{f.path!r} would be written outside {root}")
        partial = target.parent / f".{target.name}.seedvault-partial-{uuid.uuid4().hex[:8]}"
        with _naming(f.path):
            _write_verified(vault, f.blake3, partial, target, on_bytes)
        written.append(target)
    return written


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
    """A damaged or missing file's error names the file (the vault's names only its chunk
    or record)."""
    try:
        yield
    except IntegrityError as exc:
        raise IntegrityError(f"{path}: {exc}") from exc
    except NotInVault as exc:
        raise NotInVault(f"{path}: {exc}") from exc


def _write_verified(
    vault: Vault,
    blake3: str,
    partial: Path,
    target: Path,
    on_bytes: Callable[[int], None] | None,
) -> None:
    """Stream file ``blake3`` into ``partial`` (verified, fsynced), then rename it to
    ``target``; on any failure the partial file is removed and nothing has the final name."""
    try:
        with open(partial, "xb") as out:
            for piece in vault.iter_file(blake3):
                out.write(piece)
                if on_bytes is not None:
                    on_bytes(len(piece))
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def _write_blob(vault: Vault, entry: FileEntry, blobs: Path) -> HubFile:
    """Stream one file into ``blobs/<etag>`` (verified, atomically); returns its Hub view.

    A blob already present with the right size is kept: its name is its content hash, and the
    client itself only ever renames complete downloads into place.
    """
    if needs_content_oid(entry):  # a small file: its git blob id decides its name
        git = git_blob_hasher(entry.size)
        for piece in vault.iter_file(entry.blake3):
            git.update(piece)
        content_oid = str(git.hexdigest())
        hub = classify(entry, lambda _e: content_oid)
    else:
        hub = classify(entry)
    target = blobs / hub.etag
    if target.is_file() and not target.is_symlink() and target.stat().st_size == entry.size:
        return hub
    partial = blobs / f".{entry.blake3[:16]}.seedvault-partial-{uuid.uuid4().hex[:8]}"
    _write_verified(vault, entry.blake3, partial, target, None)
    return hub


def export_hf_cache(
    vault: Vault,
    manifest: Manifest,
    dest: str | os.PathLike[str],
    repo_type: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Write a snapshot into a Hugging Face cache folder ``dest`` (use it as ``HF_HUB_CACHE``).

    Lays out exactly what ``huggingface_hub`` writes when it downloads the snapshot:
    ``<type>s--<org>--<name>/blobs/<etag>`` (the Hub's ETag: SHA-256 for LFS files, else the
    git blob id), ``snapshots/<commit>/<path>`` as relative symlinks to the blobs,
    ``refs/<revision>`` holding the commit (not written when the revision is the commit), and
    the client's tree cache ``trees/<commit>.json``, which lets an offline
    ``snapshot_download(repo_id, revision=<commit>)`` confirm the snapshot is complete.
    ``repo_type`` (``model``/``dataset``), ``repo_id`` and ``revision`` default to the
    manifest's; a snapshot without an upstream commit is filed under its id's first 40 hex
    digits. Files already in the cache are reused; returns the snapshot folder. No
    ``CACHEDIR.TAG`` is written (the client adds one when it writes to the folder itself): it
    would make backup tools skip an export that is meant to be kept.

    Raises:
        UsageError: no repo id known (a snapshot of a source other than a Hugging Face repo,
            and no ``repo_id``), a malformed repo id, type or revision.
        UnsafePathError: a manifest path could escape the folder (checked before writing).
        IntegrityError: a file is damaged (nothing is written under its name).
    """
    repo_type = repo_type or _KIND_TYPES.get(manifest.kind, "model")
    repo_id = repo_id or manifest.source.get("repo")
    revision = revision or manifest.source.get("revision")
    if repo_type not in ("model", "dataset"):
        raise UsageError(f"repo type must be model or dataset, not {repo_type!r}")
    if not repo_id:
        raise UsageError(
            "the hf-cache layout is only for snapshots of Hugging Face repos (hf: and "
            f"hf-dataset: sources); this snapshot is of {manifest.source_key} (use --layout plain)"
        )
    if not _REPO_ID_RE.fullmatch(repo_id) or ".." in repo_id:
        raise UsageError(f"an hf-cache export needs a repo id org/name (got {repo_id!r})")
    commit = manifest.commit
    if not commit or not _SHA_RE.fullmatch(commit):
        commit = cas.address(manifest.encode())[:40]
    if revision is not None and revision != commit:
        try:
            check_path(revision)
        except UnsafePathError:
            raise UsageError(f"malformed revision {revision!r}") from None
    for f in manifest.files:
        check_path(f.path)
    repo = Path(dest).absolute() / repo_folder_name(repo_type, repo_id)
    blobs, snapshot = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    tree: dict[str, dict[str, object]] = {}
    for entry in manifest.files:
        link = snapshot / entry.path
        link.parent.mkdir(parents=True, exist_ok=True)
        if not _inside(snapshot, link):
            raise UnsafePathError(f"{entry.path!r} would be written outside {snapshot}")
        with _naming(entry.path):
            hub = _write_blob(vault, entry, blobs)
        if on_bytes is not None:
            on_bytes(entry.size)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blobs / hub.etag, link.parent))
        tree[entry.path] = hub.tree_cache_entry()
    trees = repo / "trees"
    trees.mkdir(exist_ok=True)
    _write_text(
        trees / f"{commit}.json", json.dumps({"format_version": 1, "files": tree}, indent=1)
    )
    if revision is not None and revision != commit:
        ref = repo / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        _write_text(ref, commit)
    return snapshot


_KIND_TYPES = {"hf-model": "model", "hf-dataset": "dataset"}
_REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA_RE = re.compile(r"[0-9a-f]{40}")


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.seedvault-partial-{uuid.uuid4().hex[:8]}")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
