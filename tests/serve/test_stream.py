"""Streamed replies: progress comments, the answer in chunks, usage at the end, and a
client that leaves cancels the work."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ponder.core.errors import EngineError
from ponder.core.types import Completion, GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.serve import ServeSettings, create_app

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

MODEL = "tiny"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "2+2?"}]}


def app_for(engine: Any, **settings: Any) -> Any:
    return create_app(engine, ServeSettings(model=MODEL, **settings))


async def test_the_openai_client_streams_the_answer_with_usage_at_the_end() -> None:
    engine = ScriptedEngine(lambda r, i: ["so \\boxed{4}" * 20, "\\boxed{5}"][i % 2])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(engine)))
    c = openai.AsyncOpenAI(base_url="http://ponder/v1", api_key="k", http_client=http)
    stream = await c.chat.completions.create(
        model=f"majority-3/{MODEL}", messages=ASK["messages"], stream=True
    )
    chunks = [ch async for ch in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "so \\boxed{4}" * 20 and len(chunks) > 3  # in several pieces
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert last.model_extra["ponder"]["votes"] == {"4": 2.0, "5": 1.0}
    # the next sample the scripted engine writes is its second text
    done = await c.completions.create(model=MODEL, prompt="q", stream=True)
    pieces = [ch async for ch in done]
    assert "".join(p.choices[0].text for p in pieces) == "\\boxed{5}"


async def test_progress_comments_arrive_before_the_answer() -> None:
    engine = ScriptedEngine(lambda r, i: "\\boxed{7}", delay=0.05)
    transport = httpx.ASGITransport(app=app_for(engine, heartbeat=0.01))
    async with httpx.AsyncClient(transport=transport, base_url="http://ponder") as http:
        body = {**ASK, "model": f"adaptive-6/{MODEL}", "stream": True}
        async with http.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in r.aiter_lines() if line]
    progress = [line for line in lines if line.startswith(": progress")]
    assert progress and "leader=7" in progress[-1]
    first_data = next(i for i, line in enumerate(lines) if line.startswith("data:"))
    assert lines.index(progress[0]) < first_data and lines[-1] == "data: [DONE]"
    samples = [int(line.split("samples=")[1].split()[0]) for line in progress]
    assert samples == sorted(samples) and samples[-1] >= 2


async def test_a_failure_after_the_stream_started_is_an_error_event() -> None:
    class Broken(ScriptedEngine):
        async def generate(self, requests: Any) -> Any:
            raise EngineError("upstream said 500")

    transport = httpx.ASGITransport(app=app_for(Broken(["x"])))
    async with httpx.AsyncClient(transport=transport, base_url="http://ponder") as http:
        r = await http.post("/v1/chat/completions", json={**ASK, "stream": True})
    assert r.status_code == 200
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert json.loads(events[0])["error"]["type"] == "upstream_error" and events[-1] == "[DONE]"
    # a request refused before work is a plain HTTP error, streamed or not
    async with httpx.AsyncClient(transport=transport, base_url="http://ponder") as http:
        r = await http.post(
            "/v1/chat/completions", json={**ASK, "model": f"majority-99/{MODEL}", "stream": True}
        )
    assert r.status_code == 400


class Hanging:
    """An engine whose generate waits until cancelled, and says so."""

    name = "hanging"
    capabilities = ScriptedEngine(["x"]).capabilities

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()

    async def generate(self, requests: list[GenRequest]) -> list[list[Completion]]:
        self.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        return None


class _Starter:
    def __init__(self) -> None:
        self.servers: list[Any] = []

    def __call__(self, app: Any) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        threading.Thread(target=server.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.servers.append(server)
        return f"http://127.0.0.1:{port}"


@pytest.fixture
def live_server() -> Iterator[_Starter]:
    starter = _Starter()
    yield starter
    for server in starter.servers:
        server.should_exit = True


def test_a_client_that_disconnects_mid_stream_cancels_the_work(live_server: Any) -> None:
    engine = Hanging()
    url = live_server(app_for(engine, heartbeat=0.05))
    with httpx.Client(base_url=url, timeout=10) as http:
        with http.stream("POST", "/v1/chat/completions", json={**ASK, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith(":"):
                    break  # saw life; now walk away
        assert engine.started.wait(5)
        assert engine.cancelled.wait(5), "the strategy kept running after the client left"
        assert http.get("/health").json()["running"] == 0


def test_shutdown_lets_in_flight_requests_finish_then_closes_the_engine(
    live_server: Any,
) -> None:
    class Slow(ScriptedEngine):
        closed = False

        async def aclose(self) -> None:
            Slow.closed = True

    engine = Slow(["\\boxed{3}"], delay=0.5)
    url = live_server(app_for(engine))
    results: list[int] = []

    def ask() -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            results.append(http.post("/v1/chat/completions", json=ASK).status_code)

    thread = threading.Thread(target=ask)
    thread.start()
    deadline = time.monotonic() + 5
    while not engine.requests:  # the request is in the strategy now
        assert time.monotonic() < deadline
        time.sleep(0.01)
    server = live_server.servers[-1]
    server.should_exit = True
    thread.join(timeout=10)
    assert results == [200]
    deadline = time.monotonic() + 5
    while not Slow.closed:
        assert time.monotonic() < deadline, "the engine was not closed on shutdown"
        time.sleep(0.02)
