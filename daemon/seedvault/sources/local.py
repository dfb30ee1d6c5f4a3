"""``dir:`` sources: a model directory on local disk (labs' checkpoints that exist nowhere else).

Every regular file under the directory is captured with its path relative to it; symbolic
links and special files are skipped (and logged), so a capture never follows a link out of
the directory. The source key is ``dir/<host>/<absolute path, percent-encoded>``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import structlog

from seedvault.errors import SourceError
from seedvault.manifest import check_path, key_segment
from seedvault.sources.base import Artifact, Expected, Observation

log = structlog.get_logger(__name__)

READ_BLOCK = 8 * 1024 * 1024


def dir_source_key(path: str | os.PathLike[str], host: str | None = None) -> str:
    """The source key of a local directory."""
    absolute = os.path.abspath(path)
    return f"dir/{key_segment(host or socket.gethostname())}/{key_segment(absolute)}"


class DirSource:
    """A directory on this machine."""

    kind = "dir"
    revision = "_"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(path))
        self.key = dir_source_key(self.path)

    async def observe(self) -> Observation:
        return await asyncio.to_thread(self._observe)

    def _observe(self) -> Observation:
        if not self.path.is_dir():
            raise SourceError(f"{self.path} is not a directory")
        artifacts: list[Artifact] = []
        for root, dirs, files in os.walk(self.path, onerror=self._walk_error):
            dirs.sort()
            for name in sorted(files):
                full = Path(root) / name
                rel = full.relative_to(self.path).as_posix()
                if full.is_symlink() or not full.is_file():
                    log.warning("dir_entry_skipped", path=rel, reason="not a regular file")
                    continue
                check_path(rel)
                size = full.stat().st_size
                artifacts.append(
                    Artifact(path=rel, open=_reader(full), expected=Expected(size=size))
                )
        return Observation(artifacts=artifacts, source_extra={"path": str(self.path)})

    @staticmethod
    def _walk_error(exc: OSError) -> None:
        raise SourceError(f"cannot read {exc.filename}: {exc.strerror}")


def _reader(path: Path) -> Callable[[], AsyncIterator[bytes]]:
    async def read() -> AsyncIterator[bytes]:
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except OSError as exc:
            raise SourceError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            while block := await asyncio.to_thread(fh.read, READ_BLOCK):
                yield block
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from exc
        finally:
            fh.close()

    return read
