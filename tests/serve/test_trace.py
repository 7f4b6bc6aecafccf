"""Traces of served requests (``--trace DIR`` and ``ponder: {"trace": true}``), built on
the request's detailed ledger, and ``stream_options.include_usage``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError, EngineError
from ponder.core.types import Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.serve import ServeSettings, create_app
from ponder.strategies import Context, make_strategy
from ponder.tasks.freeform import FreeformTask

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

MODEL = "tiny"
ASK = [{"role": "user", "content": "2+2?"}]


def app(engine: Any, **settings: Any) -> Any:
    return create_app(engine, ServeSettings(model=MODEL, **settings))


def client(application: Any) -> Any:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://p")
    return openai.AsyncOpenAI(api_key="k", base_url="http://p/v1", http_client=http, max_retries=0)


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_every_request_is_written_to_the_trace_directory(tmp_path: Path) -> None:
    engine = ScriptedEngine(["so \\boxed{4}", "hmm \\boxed{5}", "thus \\boxed{4}"])
    c = client(app(engine, trace_dir=tmp_path / "traces"))
    out = await c.chat.completions.create(model=f"majority-3/{MODEL}", messages=ASK, seed=7)
    (path,) = (tmp_path / "traces").iterdir()
    assert path.name == f"{out.id}.jsonl"  # the reply's id names its trace
    head, call, decision = read(path)
    assert head["type"] == "request" and head["id"] == out.id
    assert head["strategy"] == "majority" and head["options"]["n"] == 3
    assert head["messages"] == ASK and head["seed"] == 7
    assert call["type"] == "call" and call["kind"] == "generate" and call["seconds"] >= 0
    (request,) = call["requests"]
    assert request["messages"] == ASK and request["n"] == 3 and request["seed"] == 7
    (outputs,) = call["outputs"]
    assert [o["text"] for o in outputs] == ["so \\boxed{4}", "hmm \\boxed{5}", "thus \\boxed{4}"]
    assert [o["usage"]["completion_tokens"] for o in outputs] == [2, 2, 2]
    assert call["usage"]["completion_tokens"] == out.usage.completion_tokens == 6
    assert decision["type"] == "decision" and decision["answer"] == "4"
    assert decision["votes"] == {"4": 2.0, "5": 1.0} and decision["chosen"] == 0
    assert [cand["answer"] for cand in decision["candidates"]] == ["4", "5", "4"]
    assert decision["usage"] == out.model_extra["ponder"]["usage"]
    # not asked for: the reply does not carry it
    assert "trace" not in out.model_extra["ponder"]


async def test_a_request_asks_for_its_trace_and_sees_a_verifier_verdict() -> None:
    engine = ScriptedEngine(
        ["\\boxed{1}", "\\boxed{2}"], logprob=lambda t: -0.5 if "1" in t else -0.1
    )
    c = client(app(engine))  # no --trace: only the asking request is traced
    out = await c.chat.completions.create(
        model=MODEL, messages=ASK,
        extra_body={"ponder": {"strategy": "best_of_n", "n": 2, "scorer": "logprob",
                               "trace": True}},
    )  # fmt: skip
    trace = out.model_extra["ponder"]["trace"]
    kinds = [(r["type"], r.get("kind")) for r in trace]
    assert kinds == [("request", None), ("call", "generate"), ("call", "verdict"),
                     ("decision", None)]  # fmt: skip
    verdict = trace[2]
    assert verdict["scorer"] == "logprob:mean" and len(verdict["scores"]) == 2
    assert verdict["scores"][1] > verdict["scores"][0]
    assert verdict["usage"]["total_tokens"] == 0  # scoring by logprobs costs no tokens
    assert trace[-1]["answer"] == "2" and trace[-1]["chosen"] == 1
    assert out.choices[0].message.content == "\\boxed{2}"


async def test_a_failed_request_is_traced_with_its_error(tmp_path: Path) -> None:
    class Broken(ScriptedEngine):
        async def generate(self, requests: Any) -> Any:
            raise EngineError("upstream said 500")

    application = app(Broken(["x"]), trace_dir=tmp_path)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://p"
    ) as http:
        body = {"model": MODEL, "messages": ASK, "ponder": {"trace": True}}
        r = await http.post("/v1/chat/completions", json=body)
    assert r.status_code == 502
    inline = r.json()["error"]["ponder"]["trace"]
    (path,) = tmp_path.iterdir()
    assert read(path) == inline
    assert inline[-1]["type"] == "error" and inline[-1]["status"] == 502
    assert "upstream said 500" in inline[-1]["message"]


async def test_a_bad_trace_flag_or_stream_options_is_a_400() -> None:
    c = client(app(ScriptedEngine(["x"])))
    with pytest.raises(openai.BadRequestError, match=r"ponder\.trace"):
        await c.chat.completions.create(
            model=MODEL, messages=ASK, extra_body={"ponder": {"trace": "yes"}}
        )
    with pytest.raises(openai.BadRequestError, match="include_usage"):
        await c.chat.completions.create(
            model=MODEL, messages=ASK, stream=True, stream_options={"include_usage": "yes"}
        )


def test_a_trace_directory_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="--trace: cannot make"):
        app(ScriptedEngine(["x"]), trace_dir=blocker / "traces")


async def test_include_usage_sends_usage_in_a_last_chunk_without_choices() -> None:
    engine = ScriptedEngine(["\\boxed{4}"])
    c = client(app(engine))
    stream = await c.chat.completions.create(
        model=f"majority-2/{MODEL}", messages=ASK, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [ch async for ch in stream]
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 2 and last.model_extra["ponder"]["answer"] == "4"
    assert all(ch.usage is None for ch in body)
    assert body[-1].choices[0].finish_reason == "stop"
    assert "".join(ch.choices[0].delta.content or "" for ch in body) == "\\boxed{4}"


async def test_a_plain_ledger_keeps_no_detail_and_a_detailed_one_does() -> None:
    problem = Problem("q", "capital of France?")
    totals = []
    for detailed in (False, True):
        ledger = Ledger(detailed=detailed)
        ctx = Context(engine=ScriptedEngine(["Answer: Paris"]), task=FreeformTask(), ledger=ledger)
        await make_strategy("majority", {"n": 2})(problem, ctx)
        (event,) = ledger.events
        assert (event.detail is not None) == detailed
        totals.append(ledger.total())
    # the details change nothing that is counted
    assert totals[0] == totals[1] and totals[0].completion_tokens == 4
