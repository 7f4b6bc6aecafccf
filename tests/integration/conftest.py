"""A real llama.cpp server on 127.0.0.1 with smollm2-135m, started once per test session."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 120
SERVER_PACKAGES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings")


def _require_server_packages() -> None:
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(
            f"llama_cpp.server needs {', '.join(missing)}: "
            "pip install 'llama-cpp-python[server]==0.3.36'"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


@contextmanager
def running_server(
    command: list[str], probe: str, log: Path, name: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` (its output to ``log``), wait until GET ``probe`` answers 200,
    yield the process, and stop it afterwards; a process that exits or never answers
    fails the test with the end of its log."""
    with log.open("wb") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{_log_tail(log)}")
            try:
                if httpx.get(probe, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer within {STARTUP_SECONDS} s:\n{_log_tail(log)}")
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server_url(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _require_server_packages()
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(smollm2_path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--n_threads", "1",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running_server(command, f"{url}/v1/models", log, "llama_cpp.server"):
        yield url
