"""`ponder serve` as a real process, spoken to by the official openai client: on the
embedded smollm2-135m model, in front of a real upstream llama.cpp server, and in front
of a scripted upstream (``FaultServer``) where exact token counts are known."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.engines.fault_server import FaultServer
from tests.integration.conftest import _free_port, running_server

from ponder.core.engine import text_token_bound
from ponder.core.types import GenRequest, Message

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
openai = pytest.importorskip("openai")


@contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, "-m", "ponder.cli", "serve", "--port", str(port), *args]
    url = f"http://127.0.0.1:{port}"
    with running_server(command, f"{url}/health", tmp_path / f"serve-{port}.log", "ponder serve"):
        yield f"{url}/v1"


def ask(base_url: str, model: str, **kwargs: object) -> object:
    c = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=300)
    return c.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is 2 + 3?"}], max_tokens=32,
        **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def embedded_url(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("serve")
    with serving(tmp, "--model", str(smollm2_path), "--served-model-name", "smol") as url:
        yield url


STRATEGIES = {
    # model prefix or extra_body -> the strategy that must have run
    "smol": "single",
    "majority-3/smol": "majority",
    "best_of_n-2/smol": "best_of_n",
    "weighted_majority-2/smol": "weighted_majority",
    "adaptive-4/smol": "adaptive_consistency",
    "esc-4/smol": "esc",
    "deepconf-4/smol": "deepconf",
    "revise-2/smol": "revise",
    "beam_search-2/smol": "beam_search",
}


@pytest.mark.parametrize("model", list(STRATEGIES))
def test_each_strategy_through_the_embedded_model(embedded_url: str, model: str) -> None:
    extra_body = None
    if model.startswith("beam_search"):
        extra_body = {"ponder": {"width": 2, "max_steps": 2, "step_tokens": 16}}
    out = ask(embedded_url, model, extra_body=extra_body)
    extra = out.model_extra["ponder"]  # type: ignore[attr-defined]
    assert out.choices[0].message.content is not None  # type: ignore[attr-defined]
    assert extra["strategy"] == STRATEGIES[model]
    mine = extra["usage"]
    assert out.usage.completion_tokens == mine["completion_tokens"] > 0  # type: ignore[attr-defined]
    assert mine["calls"] >= 1


def test_in_front_of_an_upstream_server_with_keys(llama_server_url: str, tmp_path: Path) -> None:
    args = ["--model", "smollm2", "--base-url", f"{llama_server_url}/v1",
            "--served-model-name", "smol", "--api-key", "sekret"]  # fmt: skip
    with serving(tmp_path, *args) as url:
        c = openai.OpenAI(base_url=url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            c.models.list()
        c = openai.OpenAI(base_url=url, api_key="sekret", max_retries=0, timeout=300)
        for model, name in STRATEGIES.items():
            extra_body = None
            if name == "beam_search":
                extra_body = {"ponder": {"width": 2, "max_steps": 2, "step_tokens": 16}}
            out = c.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "What is 2 + 3?"}],
                max_tokens=24, extra_body=extra_body,
            )  # fmt: skip
            assert out.model_extra["ponder"]["strategy"] == name
            assert out.usage.completion_tokens > 0
        # the server keeps serving after a bad request
        with pytest.raises(openai.BadRequestError):
            c.chat.completions.create(model="majority-999/smol", messages=[])
        assert [m.id for m in c.models.list().data] == ["smol"]


def test_a_failed_request_reports_its_usage_and_each_key_reads_its_own_total(
    tmp_path: Path,
) -> None:
    question = [{"role": "user", "content": "What is 2 + 3?"}]
    with FaultServer() as upstream:  # every call: 3 prompt and 2 completion tokens
        args = ["--model", "up", "--base-url", upstream.url("ok"),
                "--api-key", "alice", "--api-key", "bob"]  # fmt: skip
        with serving(tmp_path, *args) as url:
            alice = openai.OpenAI(base_url=url, api_key="alice", max_retries=0, timeout=60)
            ok = alice.chat.completions.create(model="up", messages=question, max_tokens=4)
            # a budget is checked before each call, prompt included (on a server, an upper
            # bound from its bytes): revise's first call just fits, its second does not,
            # so revise stops with its first answer and says why
            first = text_token_bound(
                GenRequest(messages=(Message("user", question[0]["content"]),), max_tokens=4)
            )
            stopped = alice.chat.completions.create(
                model="revise-2/up", messages=question, max_tokens=4,
                extra_body={"ponder": {"budget": first + 4}},
            )  # fmt: skip
            # with a budget no call fits, the request fails having spent nothing
            with pytest.raises(openai.BadRequestError) as info:
                alice.chat.completions.create(
                    model="revise-2/up", messages=question, max_tokens=4,
                    extra_body={"ponder": {"budget": 1}},
                )  # fmt: skip
            totals = {
                key: httpx.get(f"{url}/ponder/usage", headers={"Authorization": f"Bearer {key}"})
                for key in ("alice", "bob", "eve")
            }
    one_call = {"prompt_tokens": 3, "cached_tokens": 0, "completion_tokens": 2,
                "total_tokens": 5, "calls": 1}  # fmt: skip
    assert ok.model_extra["ponder"]["usage"] == one_call  # type: ignore[index]
    ponder = stopped.model_extra["ponder"]  # type: ignore[index]
    assert ponder["usage"] == one_call and ponder["stopped"] == "budget"
    assert info.value.body["ponder"]["usage"]["total_tokens"] == 0  # type: ignore[index]
    assert totals["alice"].json() == {
        "object": "ponder.usage", "requests": 3, "failed_requests": 1,
        "usage": {"prompt_tokens": 6, "cached_tokens": 0, "completion_tokens": 4,
                  "total_tokens": 10, "calls": 2},
    }  # fmt: skip
    assert totals["bob"].json()["requests"] == 0 and totals["eve"].status_code == 401
