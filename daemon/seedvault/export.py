"""Export: write a snapshot's files to a directory, verified, never outside it.

Each file is streamed from the vault (every chunk verified, the whole file checked against its
BLAKE3) into a hidden partial file beside its final name and renamed into place only when
complete, so a damaged file never appears under its final name. Paths are checked again here
(a manifest is untrusted input): nothing is written outside the target directory, also not
through a symbolic link that already exists inside it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from seedvault.errors import UnsafePathError
from seedvault.manifest import Manifest, check_path
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
        try:
            with open(partial, "xb") as out:
                for piece in vault.iter_file(f.blake3):
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
        written.append(target)
    return written
