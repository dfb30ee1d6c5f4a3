"""``fs`` backend: one file per object under a local directory.

Writes go to a temporary file in ``<root>/.tmp/``, are fsynced, then renamed into place, so
an object is either absent or complete, also after a power loss. The directories that got new
entries are fsynced together by :meth:`FsStore.sync` (and before every compare-and-swap), which
costs one fsync per touched shard directory instead of one per object.
Compare-and-swap holds an exclusive ``flock`` on ``<root>/.locks/<key hash>`` while it compares
the current content's BLAKE3 with the caller's version and renames the new file in.

Fault injection for crash tests: with ``SEEDVAULT_FAULT_KILL_AFTER_PUTS=N`` in the
environment, the process SIGKILLs itself right after its N-th object is installed, so a test can
stop a capture at a chosen, deterministic point of its write sequence.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import blake3

from seedvault.errors import ObjectNotFound, PreconditionFailed, StoreError
from seedvault.store.base import ObjectInfo, check_key


class FsStore:
    """Objects as files under ``root``."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).absolute()
        self.fsync = fsync
        # Nothing is created until the first write, so opening a foreign directory (which the
        # vault then refuses) leaves it untouched.
        self._made_dirs: set[Path] = set()
        self._dirty_dirs: set[Path] = set()
        self._dirty_lock = threading.Lock()
        self._kill_after = int(os.environ.get("SEEDVAULT_FAULT_KILL_AFTER_PUTS", "0") or 0)
        self._puts = 0
        self._count_lock = threading.Lock()

    def _ensure_dir(self, path: Path) -> None:
        if path not in self._made_dirs:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {path}: {exc.strerror}") from exc
            self._made_dirs.add(path)

    @property
    def remote(self) -> bool:
        """Files on a local filesystem."""
        return False

    @property
    def description(self) -> str:
        return f"fs:{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        except IsADirectoryError:
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from exc

    def _write_tmp(self, data: bytes) -> Path:
        self._ensure_dir(self.root / ".tmp")
        tmp = self.root / ".tmp" / uuid.uuid4().hex
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot write into {self.root}: {exc.strerror}") from exc
        return tmp

    def _install(self, tmp: Path, path: Path) -> None:
        parent = path.parent
        try:
            self._ensure_dir(parent)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot install {path}: {exc.strerror}") from exc
        if self.fsync:
            with self._dirty_lock:
                self._dirty_dirs.add(parent)
        if self._kill_after:
            with self._count_lock:
                self._puts += 1
                if self._puts >= self._kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)

    def sync(self) -> None:
        with self._dirty_lock:
            dirs, self._dirty_dirs = self._dirty_dirs, set()
        for directory in sorted(dirs):
            try:
                dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(f"cannot sync {directory}: {exc.strerror}") from exc

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._install(self._write_tmp(data), path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        return ObjectInfo(key, st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete {path}: {exc.strerror}") from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only the directories the prefix can reach, in sorted order, so listing
        # "chunks/ab" does not scan every other chunk folder.
        yield from self._walk(self.root, "", prefix)

    def _walk(self, directory: Path, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot list {directory}: {exc.strerror}") from exc
        for entry in entries:
            if entry.name.startswith("."):
                continue
            key = rel + entry.name
            if entry.is_dir(follow_symlinks=False):
                sub = key + "/"
                if sub.startswith(prefix) or prefix.startswith(sub):
                    yield from self._walk(Path(entry.path), sub, prefix)
            elif key.startswith(prefix) and entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield ObjectInfo(key, st.st_size, st.st_mtime)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        data = self.get(key)
        return data, blake3.blake3(data).hexdigest()

    def put_if(self, key: str, data: bytes, version: str | None) -> str:
        path = self._path(key)
        self.sync()
        self._ensure_dir(self.root / ".locks")
        lock_path = self.root / ".locks" / blake3.blake3(key.encode()).hexdigest()
        tmp = self._write_tmp(data)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot open lock {lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current: str | None = blake3.blake3(path.read_bytes()).hexdigest()
            except FileNotFoundError:
                current = None
            if current != version:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise PreconditionFailed(f"{key}: expected version {version}, found {current}")
            self._install(tmp, path)
            self.sync()  # a ref is durable before put_if returns
        except OSError as exc:
            if exc.errno == errno.EINTR:
                raise StoreError(f"interrupted while locking {key}") from exc
            raise StoreError(f"cannot update {path}: {exc.strerror}") from exc
        finally:
            os.close(fd)  # closing releases the flock
        return blake3.blake3(data).hexdigest()

    def close(self) -> None:
        pass
