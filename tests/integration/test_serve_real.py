"""`ponder serve` as a real process, spoken to by the official openai client: on the
embedded smollm2-135m model, and in front of a real upstream llama.cpp server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.integration.conftest import _free_port, _log_tail

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
openai = pytest.importorskip("openai")


@contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / f"serve-{port}.log"
    command = [sys.executable, "-m", "ponder.cli", "serve", "--port", str(port), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ponder serve exited with {proc.returncode}:\n{_log_tail(log)}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"ponder serve did not start:\n{_log_tail(log)}")
            time.sleep(0.3)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def ask(base_url: str, model: str, **kwargs: object) -> object:
    c = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=300)
    return c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is 2 + 3?"}], max_tokens=32,
        **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("strategy", ["single", "majority-3", "best_of_n-2", "adaptive-4"])
def test_each_strategy_through_the_embedded_model(
    smollm2_path: Path, tmp_path: Path, strategy: str
) -> None:
    with serving(tmp_path, "--model", str(smollm2_path), "--served-model-name", "smol") as url:
        out = ask(url, f"{strategy}/smol" if strategy != "single" else "smol")
    extra = out.model_extra["ponder"]  # type: ignore[attr-defined]
    assert out.choices[0].message.content  # type: ignore[attr-defined]
    assert extra["strategy"] in ("single", "majority", "best_of_n", "adaptive_consistency")
    mine = extra["usage"]
    assert out.usage.completion_tokens == mine["completion_tokens"] > 0  # type: ignore[attr-defined]
    samples = {"single": 1, "majority-3": 3, "best_of_n-2": 2}.get(strategy)
    if samples is not None:
        assert sum(extra["votes"].values()) <= samples
        assert mine["completion_tokens"] <= samples * 32 + (64 if "best" in strategy else 0)


def test_in_front_of_an_upstream_server_with_keys(llama_server_url: str, tmp_path: Path) -> None:
    args = ["--model", "smollm2", "--base-url", f"{llama_server_url}/v1",
            "--served-model-name", "smol", "--api-key", "sekret"]  # fmt: skip
    with serving(tmp_path, *args) as url:
        c = openai.OpenAI(base_url=url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
        c = openai.OpenAI(base_url=url, api_key="sekret", max_retries=0, timeout=300)
        out = c.chat.completions.create(
            model="majority-2/smol", messages=[{"role": "user", "content": "What is 2 + 3?"}],
            max_tokens=24,
        )  # fmt: skip
        assert out.model_extra["ponder"]["strategy"] == "majority"
        assert out.usage.completion_tokens > 0
        # the server keeps serving after a bad request
        with pytest.raises(openai.BadRequestError):
            c.chat.completions.create(model="majority-999/smol", messages=[])
        assert [m.id for m in c.models.list().data] == ["smol"]
