"""The server with the scripted engine behind it, spoken to by the official openai client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ponder.core.errors import EngineError, EngineTimeout
from ponder.core.types import GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.serve import Limits, ServeSettings, create_app

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

MODEL = "tiny"


def answers(*texts: str) -> Callable[[GenRequest, int], str]:
    return lambda r, i: texts[i % len(texts)]


def client(engine: Any, key: str = "none", **settings: Any) -> Any:
    app = create_app(engine, ServeSettings(model=MODEL, **settings))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ponder")
    return openai.AsyncOpenAI(
        api_key=key, base_url="http://ponder/v1", http_client=http,
        max_retries=0,
    )  # fmt: skip


def raw(engine: Any, **settings: Any) -> httpx.AsyncClient:
    app = create_app(engine, ServeSettings(model=MODEL, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ponder")


async def test_majority_by_model_prefix_counts_every_token() -> None:
    engine = ScriptedEngine(answers("so \\boxed{4}", "hmm \\boxed{5}", "thus \\boxed{4}"))
    c = client(engine)
    out = await c.chat.completions.create(
        model=f"majority-3/{MODEL}", messages=[{"role": "user", "content": "2+2?"}]
    )
    assert out.choices[0].message.content in ("so \\boxed{4}", "thus \\boxed{4}")
    extra = out.model_extra["ponder"]
    assert extra["strategy"] == "majority" and extra["options"]["n"] == 3
    assert extra["answer"] == "4" and extra["votes"] == {"4": 2.0, "5": 1.0}
    # usage is every sample's: the prompt once prefilled, shared by the siblings
    mine = extra["usage"]
    assert out.usage.completion_tokens == mine["completion_tokens"] > 0
    assert out.usage.prompt_tokens == mine["prompt_tokens"] + mine["cached_tokens"]
    assert len(engine.requests) == 1 and engine.requests[0].n == 3
    assert engine.requests[0].messages[-1].content == "2+2?"


async def test_extra_body_selects_any_strategy_and_returns_candidates() -> None:
    engine = ScriptedEngine(answers("\\boxed{1}", "\\boxed{2}"))
    c = client(engine)
    out = await c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "q"}], temperature=0.3,
        extra_body={"ponder": {"strategy": "majority", "n": 4, "candidates": True}},
    )  # fmt: skip
    extra = out.model_extra["ponder"]
    assert len(extra["candidates"]) == 4 and extra["options"]["temperature"] == 0.3
    assert engine.requests[0].temperature == 0.3
    # the server default when nothing is asked: one greedy sample
    out = await c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "q"}])
    assert out.model_extra["ponder"]["strategy"] == "single"
    assert engine.requests[-1].n == 1 and engine.requests[-1].temperature == 0.0
    done = await c.completions.create(model=f"adaptive-4/{MODEL}", prompt="q")
    assert done.model_extra["ponder"]["strategy"] == "adaptive_consistency"
    assert done.model_extra["ponder"]["options"]["max_n"] == 4 and done.choices[0].text
    models = await c.models.list()
    assert [m.id for m in models.data] == [MODEL]


@pytest.mark.parametrize(
    ("kwargs", "status", "match"),
    [
        ({"model": f"majority-99/{MODEL}"}, 400, "limit of 32"),
        ({"extra_body": {"ponder": {"strategy": "nope"}}}, 400, "unknown strategy"),
        ({"extra_body": {"ponder": {"strategy": "majority", "bogus": 1}}}, 400, "bogus"),
        ({"extra_body": {"ponder": {"budget": 0}}}, 400, "budget"),
        ({"max_tokens": 100000}, 400, "max_tokens"),
        ({"model": "other-model"}, 404, "not served"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 400, "role"),
        ({"extra_body": {"ponder": {"strategy": "majority", "n": 8, "budget": 20}}}, 400,
         "budget"),
    ],
)  # fmt: skip
async def test_bad_requests_get_clear_4xx(kwargs: dict[str, Any], status: int, match: str) -> None:
    engine = ScriptedEngine(answers("\\boxed{1}"))
    c = client(engine)
    args = {"model": MODEL, "messages": [{"role": "user", "content": "q"}], **kwargs}
    with pytest.raises(openai.APIStatusError) as info:
        await c.chat.completions.create(**args)
    assert info.value.status_code == status and match in str(info.value)


async def test_malformed_json_and_missing_fields() -> None:
    async with raw(ScriptedEngine(answers("x"))) as http:
        bad = await http.post("/v1/chat/completions", content=b"{nope")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        arr = await http.post("/v1/chat/completions", json=[1, 2])
        assert arr.status_code == 400 and "JSON object" in arr.json()["error"]["message"]
        nomodel = await http.post("/v1/chat/completions", json={"messages": []})
        assert nomodel.status_code == 400
        health = await http.get("/health")
        assert health.json()["status"] == "ok"


async def test_api_keys_guard_every_route_and_do_no_work() -> None:
    engine = ScriptedEngine(answers("\\boxed{1}"))
    settings = {"api_keys": frozenset({"sekret"})}
    with pytest.raises(openai.AuthenticationError):
        await client(engine, **settings).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "q"}]
        )
    assert engine.requests == []
    ok = await client(engine, key="sekret", **settings).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "q"}]
    )
    assert ok.choices[0].message.content == "\\boxed{1}"


class FailingEngine(ScriptedEngine):
    def __init__(self, error: Exception) -> None:
        super().__init__(answers("x"))
        self.error = error

    async def generate(self, requests: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [(EngineError("upstream said 500"), 502), (EngineTimeout("read timed out"), 504)],
)
async def test_engine_failures_become_502_and_504(error: Exception, status: int) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        await client(FailingEngine(error)).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "q"}]
        )
    assert info.value.status_code == status


async def test_a_full_queue_answers_429_with_retry_after_and_recovers() -> None:
    engine = ScriptedEngine(answers("\\boxed{1}"), delay=0.2)
    async with raw(engine, concurrency=1, queue=1) as http:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "q"}]}
        replies = await asyncio.gather(
            *(http.post("/v1/chat/completions", json=body) for _ in range(4))
        )
        codes = sorted(r.status_code for r in replies)
        assert codes == [200, 200, 429, 429]
        busy = next(r for r in replies if r.status_code == 429)
        assert busy.headers["retry-after"] == "1"
        again = await http.post("/v1/chat/completions", json=body)
        assert again.status_code == 200


async def test_a_slow_strategy_times_out_with_504() -> None:
    engine = ScriptedEngine(answers("x"), delay=1.0)
    async with raw(engine, request_timeout=0.1) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "q"}]},
        )
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"


def test_limits_are_settings() -> None:
    assert Limits().max_n == 32 and ServeSettings(model="m").queue == 16
