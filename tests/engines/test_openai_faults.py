"""OpenAIEngine against a real misbehaving HTTP server on 127.0.0.1: retries are counted on
the server side, over real sockets, with real timeouts."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fault_server import FaultServer

from ponder.core.errors import EngineError, EngineTimeout, RateLimited
from ponder.core.types import GenRequest, Message
from ponder.engines.openai import OpenAIEngine

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(hang_seconds=3.0, flaky_failures=2) as srv:
        yield srv


@pytest.fixture
def faults(server: FaultServer) -> FaultServer:
    server.hits.clear()
    return server


def make_engine(faults: FaultServer, route: str, **kwargs: Any) -> OpenAIEngine:
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("timeout", 5.0)
    return OpenAIEngine("fault-model", base_url=faults.url(route), **kwargs)


CHAT = GenRequest(messages=(Message("user", "hello"),))
TEXT = GenRequest(prompt="hello")


async def test_ok_route_answers(faults: FaultServer) -> None:
    eng = make_engine(faults, "ok")
    try:
        out = await eng.generate([CHAT, TEXT])
    finally:
        await eng.aclose()
    assert [r[0].text for r in out] == ["all good", "all good"]
    assert out[0][0].usage.prompt_tokens == 3
    assert faults.hits["ok"] == 2


async def test_500_is_retried_then_raised(faults: FaultServer) -> None:
    eng = make_engine(faults, "error500", max_retries=3)
    try:
        with pytest.raises(EngineError, match=r"HTTP 500.*gave up after 4 attempts") as info:
            await eng.generate([CHAT])
    finally:
        await eng.aclose()
    assert type(info.value) is EngineError
    assert info.value.retryable
    assert "the model fell over" in str(info.value)
    assert faults.hits["error500"] == 4


async def test_flaky_server_succeeds_after_retries(faults: FaultServer) -> None:
    eng = make_engine(faults, "flaky", max_retries=4)
    try:
        (comps,) = await eng.generate([TEXT])
    finally:
        await eng.aclose()
    assert comps[0].text == "all good"
    assert faults.hits["flaky"] == 3


async def test_429_is_retried_as_rate_limited(faults: FaultServer) -> None:
    # a long backoff that Retry-After: 0 must override, or the test would time out
    eng = make_engine(faults, "ratelimit", max_retries=2, backoff_base=30.0)
    start = time.monotonic()
    try:
        with pytest.raises(RateLimited, match=r"HTTP 429.*gave up after 3 attempts"):
            await eng.generate([CHAT])
    finally:
        await eng.aclose()
    assert faults.hits["ratelimit"] == 3
    assert time.monotonic() - start < 5


async def test_hang_times_out_and_is_retried(faults: FaultServer) -> None:
    eng = make_engine(faults, "hang", timeout=0.3, max_retries=1)
    start = time.monotonic()
    try:
        with pytest.raises(EngineTimeout, match=r"within 0\.3 s.*gave up after 2 attempts"):
            await eng.generate([CHAT])
    finally:
        await eng.aclose()
    elapsed = time.monotonic() - start
    assert faults.hits["hang"] == 2
    assert 0.6 <= elapsed < 3.0


async def test_dropped_connection_is_retried(faults: FaultServer) -> None:
    eng = make_engine(faults, "drop", max_retries=2)
    try:
        with pytest.raises(EngineError, match=r"could not reach.*gave up after 3 attempts"):
            await eng.generate([CHAT])
    finally:
        await eng.aclose()
    assert faults.hits["drop"] == 3


async def test_malformed_json_raises_at_once(faults: FaultServer) -> None:
    eng = make_engine(faults, "malformed", max_retries=4)
    try:
        with pytest.raises(EngineError, match="not JSON") as info:
            await eng.generate([TEXT])
    finally:
        await eng.aclose()
    assert not info.value.retryable
    assert "trunc" in str(info.value)
    assert faults.hits["malformed"] == 1


async def test_400_raises_at_once(faults: FaultServer) -> None:
    eng = make_engine(faults, "badrequest", max_retries=4)
    try:
        with pytest.raises(EngineError, match=r"HTTP 400.*unknown field") as info:
            await eng.generate([CHAT])
    finally:
        await eng.aclose()
    assert not info.value.retryable
    assert faults.hits["badrequest"] == 1


async def test_nothing_listening_is_a_retryable_connection_error() -> None:
    # a port that was free a moment ago: almost certainly nobody listens there now
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    eng = OpenAIEngine(
        "m", base_url=f"http://127.0.0.1:{port}", max_retries=1, backoff_base=0.01, timeout=2
    )
    try:
        with pytest.raises(EngineError, match=r"could not reach.*gave up after 2 attempts"):
            await eng.generate([CHAT])
    finally:
        await eng.aclose()


def test_server_stops_promptly_while_a_request_hangs() -> None:
    srv = FaultServer(hang_seconds=30.0).start()
    outcome: list[BaseException] = []

    def hang() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        try:
            conn.request("POST", "/hang/v1/completions", body=b"{}")
            conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)
        finally:
            conn.close()

    client = threading.Thread(target=hang, daemon=True)
    client.start()
    deadline = time.monotonic() + 5
    while srv.hits["hang"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    srv.stop()
    client.join(timeout=5)
    assert time.monotonic() - start < 3
    assert not client.is_alive()
    # the server hung up without an answer; a read timeout would have taken 10 s
    assert len(outcome) == 1 and not isinstance(outcome[0], TimeoutError)
