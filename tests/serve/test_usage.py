"""What a request spent, reported when it fails, and totalled per API key."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from ponder.core.errors import EngineError
from ponder.core.types import Completion, GenRequest, Message, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.serve import ServeSettings, create_app
from ponder.serve.accounts import Accounts

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

MODEL = "tiny"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "q"}]}
# revise-3 makes three calls one after another; the first is answered, the second fails
REVISE = {**ASK, "model": f"revise-3/{MODEL}", "max_tokens": 5}
# the first call: "user: q" is 2 prompt tokens, "\boxed{1}" 1 completion token
FIRST_CALL = {
    "prompt_tokens": 2, "cached_tokens": 0, "completion_tokens": 1, "total_tokens": 3, "calls": 1,
}  # fmt: skip
NOTHING = {
    "prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "calls": 0,
}  # fmt: skip


class FailsAfterFirstCall(ScriptedEngine):
    """Answers its first ``answered`` calls, then raises ``error`` on every later one
    (with ``error`` None, a later call never returns)."""

    def __init__(self, error: Exception | None, answered: int = 1) -> None:
        super().__init__(["\\boxed{1}"])
        self.error = error
        self.answered = answered
        self.calls = 0

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        self.calls += 1
        if self.calls > self.answered:
            if self.error is None:
                await asyncio.sleep(60)
            raise self.error or AssertionError("a hanging call was not cancelled")
        return await super().generate(requests)


def app(engine: Any, **settings: Any) -> Any:
    return create_app(engine, ServeSettings(model=MODEL, **settings))


def http(application: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application)
    return httpx.AsyncClient(transport=transport, base_url="http://ponder")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (EngineError("upstream said 500"), 502, "upstream_error"),
        # a strategy or scorer that cannot handle what the model wrote
        (ValueError("no step separator in the output"), 500, "server_error"),
    ],
)
async def test_a_failing_strategy_reports_what_it_spent(
    error: Exception, status: int, kind: str
) -> None:
    async with http(app(FailsAfterFirstCall(error))) as c:
        r = await c.post("/v1/chat/completions", json=REVISE)
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["type"] == kind and str(error) in body["message"]
    assert body["ponder"]["usage"] == FIRST_CALL


async def test_a_timed_out_request_reports_the_calls_that_finished() -> None:
    engine = FailsAfterFirstCall(None)  # the second call hangs until cancelled
    async with http(app(engine, request_timeout=0.3)) as c:
        r = await c.post("/v1/chat/completions", json=REVISE)
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
    assert r.json()["error"]["ponder"]["usage"] == FIRST_CALL
    assert engine.calls == 2  # the cancelled call was started, and is not counted


async def test_an_over_budget_request_reports_what_it_spent() -> None:
    # a budget is a hard limit checked before each call, prompt included: the first
    # call's worst case is 2 + 5 = 7 tokens; with 7 the second call cannot fit
    engine = ScriptedEngine(["\\boxed{1}"])
    async with http(app(engine)) as c:
        r = await c.post("/v1/chat/completions", json={**REVISE, "ponder": {"budget": 7}})
    assert r.status_code == 200, r.text
    ponder = r.json()["ponder"]
    assert ponder["stopped"] == "budget" and "budget" in ponder["stop_reason"]
    assert ponder["usage"] == FIRST_CALL and ponder["answer"] == "1"
    assert len(engine.requests) == 1
    # with 6 not even the first call fits: an error that says it spent nothing
    async with http(app(engine)) as c:
        r = await c.post("/v1/chat/completions", json={**REVISE, "ponder": {"budget": 6}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "budget_exceeded"
    assert r.json()["error"]["ponder"]["usage"] == NOTHING
    assert len(engine.requests) == 1


async def test_the_openai_client_sees_the_usage_of_a_failed_request() -> None:
    transport = httpx.ASGITransport(app=app(FailsAfterFirstCall(EngineError("boom"))))
    c = openai.AsyncOpenAI(
        api_key="k", base_url="http://ponder/v1", max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    )  # fmt: skip
    with pytest.raises(openai.APIStatusError) as info:
        await c.chat.completions.create(
            model=REVISE["model"], messages=REVISE["messages"], max_tokens=5
        )
    assert info.value.status_code == 502
    assert info.value.body["ponder"]["usage"] == FIRST_CALL  # type: ignore[index]


async def test_a_streamed_failure_carries_usage_in_its_error_event() -> None:
    async with http(app(FailsAfterFirstCall(EngineError("boom")))) as c:
        r = await c.post("/v1/chat/completions", json={**REVISE, "stream": True})
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    error = json.loads(events[-2])["error"]
    assert error["type"] == "upstream_error" and events[-1] == "[DONE]"
    assert error["ponder"]["usage"] == FIRST_CALL


async def test_each_key_reads_only_its_own_running_total() -> None:
    # the engine answers three calls, then fails: bob's request and alice's first take
    # one call each, alice's revise request fails after its first
    engine = FailsAfterFirstCall(EngineError("boom"), answered=3)
    async with http(app(engine, api_keys=frozenset({"alice", "bob"}))) as c:
        streamed = await c.post(
            "/v1/completions", json={"model": MODEL, "prompt": "q", "stream": True},
            headers=bearer("bob"),
        )  # fmt: skip
        assert streamed.status_code == 200
        ok = await c.post("/v1/chat/completions", json=ASK, headers=bearer("alice"))
        assert ok.status_code == 200
        failed = await c.post("/v1/chat/completions", json=REVISE, headers=bearer("alice"))
        assert failed.status_code == 502
        alice = (await c.get("/v1/ponder/usage", headers=bearer("alice"))).json()
        bob = (await c.get("/v1/ponder/usage", headers=bearer("bob"))).json()
        # no key, or a wrong one, reads nothing
        assert (await c.get("/v1/ponder/usage")).status_code == 401
        assert (await c.get("/v1/ponder/usage", headers=bearer("eve"))).status_code == 401
    # alice: the successful request (one call) plus the one that failed after one call
    spent = Usage.from_dict(ok.json()["ponder"]["usage"]) + Usage.from_dict(FIRST_CALL)
    assert alice == {
        "object": "ponder.usage", "usage": spent.to_dict(), "requests": 2, "failed_requests": 1,
    }  # fmt: skip
    assert bob["usage"]["calls"] == 1 and bob["usage"]["completion_tokens"] == 1
    assert bob["requests"] == 1 and bob["failed_requests"] == 0
    # neither answer names or counts the other key
    assert "bob" not in json.dumps(alice) and "alice" not in json.dumps(bob)


async def test_without_configured_keys_spending_is_tallied_by_the_key_sent() -> None:
    async with http(app(ScriptedEngine(["\\boxed{1}"]))) as c:
        for headers in (bearer("team-a"), bearer("team-a"), {}):
            r = await c.post("/v1/chat/completions", json=ASK, headers=headers)
            assert r.status_code == 200
        team_a = (await c.get("/v1/ponder/usage", headers=bearer("team-a"))).json()
        anonymous = (await c.get("/v1/ponder/usage")).json()
        # the literal word is a key like any other, not the no-key account
        named = (await c.get("/v1/ponder/usage", headers=bearer("anonymous"))).json()
        # a request refused before any work spends nothing and is not counted
        bad = await c.post("/v1/chat/completions", json={"model": MODEL}, headers=bearer("team-b"))
        assert bad.status_code == 400
        team_b = (await c.get("/v1/ponder/usage", headers=bearer("team-b"))).json()
    assert team_a["requests"] == 2 and team_a["usage"]["calls"] == 2
    assert anonymous["requests"] == 1 and anonymous["usage"]["completion_tokens"] == 1
    assert named["requests"] == 0 and named["usage"] == NOTHING
    assert team_b["requests"] == 0 and team_b["usage"] == NOTHING


async def test_a_cancelled_request_still_counts_what_it_spent() -> None:
    application = app(FailsAfterFirstCall(None))
    server = application.state.server
    prepared = server.prepare(REVISE)
    work = asyncio.ensure_future(server.solve((Message("user", "q"),), prepared, key="k"))
    while server.engine.calls < 2:  # the second call is in flight
        await asyncio.sleep(0.01)
    work.cancel()  # what a streaming client that leaves does
    with pytest.raises(asyncio.CancelledError):
        await work
    account = server.accounts.get("k")
    assert account.usage.to_dict() == FIRST_CALL and account.failed_requests == 1


def test_accounts_add_up_exactly_from_many_threads() -> None:
    accounts = Accounts()
    one = Usage(prompt_tokens=2, completion_tokens=3, calls=1)

    def spend(key: str) -> None:
        for i in range(500):
            accounts.add(key, one, failed=i % 5 == 0)

    threads = [threading.Thread(target=spend, args=(k,)) for k in ("a", "b") * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for key in ("a", "b"):
        account = accounts.get(key)
        assert account.requests == 2000 and account.failed_requests == 400
        assert account.usage == Usage(prompt_tokens=4000, completion_tokens=6000, calls=2000)
    assert accounts.get("c").requests == 0
