from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from ponder.core.engine import Capabilities
from ponder.core.errors import CapabilityMissing, ConfigError, EngineError
from ponder.core.types import Completion, GenRequest, Message, Usage
from ponder.engines.openai import OpenAIEngine
from ponder.engines.pool import EnginePool
from ponder.engines.registry import make_engine


def _req(i: int = 0) -> GenRequest:
    return GenRequest(messages=(Message("user", f"q{i}"),), n=1, max_tokens=8, seed=i)


class Fake:
    """A member that answers after ``delay`` seconds, or fails the way it is told."""

    def __init__(self, label: str, *, delay: float = 0.0, healthy: bool = True) -> None:
        self.label = label
        self.delay = delay
        self.fail: EngineError | None = None
        self.up = healthy
        self.calls = 0
        self.health_checks = 0
        self.in_flight = 0
        self.peak = 0
        self.closed = False

    @property
    def name(self) -> str:
        return "m"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(native_n=True, logprobs=True, top_logprobs=5)

    async def health(self, timeout: float) -> None:
        self.health_checks += 1
        if not self.up:
            raise EngineError(f"{self.label} is down", retryable=True)

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        self.calls += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            return [
                [Completion(f"{self.label}:{r.seed}", "stop", usage=Usage(3, 0, 2))]
                for r in requests
            ]
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True


async def test_requests_spread_by_outstanding_count() -> None:
    a, b = Fake("a", delay=0.05), Fake("b", delay=0.05)
    pool = EnginePool([a, b], labels=["a", "b"])
    out = await pool.generate([_req(i) for i in range(8)])
    assert [c[0].text.split(":")[1] for c in out] == [str(i) for i in range(8)]
    assert (a.calls, b.calls) == (4, 4)
    assert (a.peak, b.peak) == (4, 4)
    # a slow member gets less work than a fast one when requests keep coming
    slow, fast = Fake("slow", delay=0.2), Fake("fast", delay=0.01)
    pool = EnginePool([slow, fast], labels=["slow", "fast"])

    async def client(i: int) -> None:
        for j in range(5):
            await pool.generate([_req(10 * i + j)])

    await asyncio.gather(*(client(i) for i in range(4)))
    assert fast.calls > 2 * slow.calls
    assert sum(s.served for s in pool.stats()) == 20


async def test_a_member_that_dies_mid_run_fails_over_and_no_request_is_lost() -> None:
    a, b = Fake("a", delay=0.02), Fake("b", delay=0.02)
    pool = EnginePool([a, b], labels=["a", "b"], recheck_after=60)
    await pool.generate([_req(0), _req(1)])
    a.fail = EngineError("could not reach a", retryable=True)
    a.up = False
    out = await pool.generate([_req(i) for i in range(2, 12)])
    assert all(c[0].text.startswith("b:") for c in out)
    stats = {s.label: s for s in pool.stats()}
    # the requests in flight on a when it died (half of them) each failed once there
    assert not stats["a"].healthy and stats["a"].failures == 5
    assert "could not reach a" in (stats["a"].last_error or "")
    assert stats["b"].healthy and stats["b"].served == 11


async def test_a_down_member_is_checked_again_and_rejoins() -> None:
    now = [0.0]
    a, b = Fake("a"), Fake("b")
    pool = EnginePool([a, b], labels=["a", "b"], recheck_after=5, clock=lambda: now[0])
    a.fail = EngineError("500", retryable=True)
    a.up = False
    await pool.generate([_req(0), _req(1)])
    checks = a.health_checks
    now[0] = 4.0
    await pool.generate([_req(2)])
    assert a.health_checks == checks  # not due yet
    a.fail, a.up = None, True
    now[0] = 6.0
    await pool.generate([_req(3)])
    await asyncio.sleep(0)  # the background check runs
    await asyncio.sleep(0)
    assert a.health_checks == checks + 1
    assert [s.healthy for s in pool.stats()] == [True, True]
    out = await pool.generate([_req(4), _req(5)])
    assert {c[0].text[0] for c in out} == {"a", "b"}


async def test_errors_that_would_fail_anywhere_are_not_failed_over() -> None:
    a, b = Fake("a"), Fake("b")
    pool = EnginePool([a, b], labels=["a", "b"])
    a.fail = b.fail = EngineError("400 bad request")
    with pytest.raises(EngineError, match="400"):
        await pool.generate([_req(0)])
    assert a.calls + b.calls == 1
    a.fail = b.fail = CapabilityMissing("no logprobs")
    with pytest.raises(CapabilityMissing):
        await pool.generate([_req(1)])
    assert [s.healthy for s in pool.stats()] == [True, True]


async def test_all_members_failing_raises_with_each_reason() -> None:
    a, b = Fake("a"), Fake("b")
    pool = EnginePool([a, b], labels=["a", "b"], recheck_after=60)
    a.fail = EngineError("a timed out", retryable=True)
    b.fail = EngineError("b refused", retryable=True)
    with pytest.raises(EngineError, match=r"no server of m could answer.*a timed out.*b refused"):
        await pool.generate([_req(0)])
    c, d = Fake("c", healthy=False), Fake("d", healthy=False)
    with pytest.raises(EngineError, match=r"none of the 2 servers of m answered"):
        await EnginePool([c, d], labels=["c", "d"]).generate([_req(0)])


async def test_pool_settings_are_checked_and_members_closed() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        EnginePool([])

    class Other(Fake):
        @property
        def name(self) -> str:
            return "other"

    with pytest.raises(ConfigError, match="one model"):
        EnginePool([Fake("a"), Other("b")])
    a, b = Fake("a"), Fake("b")
    pool = EnginePool([a, b])
    assert pool.capabilities.top_logprobs == 5 and pool.name == "m"
    await pool.aclose()
    assert a.closed and b.closed


def _server(label: str, state: dict[str, Any]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if state.get(label) == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        return httpx.Response(
            200,
            json={
                "choices": [{"index": 0, "message": {"content": label}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
            },
        )

    return httpx.MockTransport(handle)


async def test_openai_members_health_and_failover_over_http() -> None:
    state: dict[str, Any] = {}
    members = [
        OpenAIEngine("m", base_url=f"http://{x}:1/v1", transport=_server(x, state), max_retries=0)
        for x in ("s1", "s2")
    ]
    await members[0].health()
    pool = EnginePool(members, recheck_after=60)
    out = await pool.generate([_req(i) for i in range(4)])
    assert sorted(c[0].text for c in out) == ["s1", "s1", "s2", "s2"]
    state["s1"] = "down"
    out = await pool.generate([_req(i) for i in range(4)])
    assert [c[0].text for c in out] == ["s2"] * 4
    assert all(c[0].usage.total_tokens == 5 for c in out)
    with pytest.raises(EngineError, match="could not reach"):
        await members[0].health()
    await pool.aclose()


def test_comma_separated_base_urls_make_a_pool() -> None:
    engine = make_engine("m", base_url="http://127.0.0.1:1,http://127.0.0.1:2/v1")
    assert isinstance(engine, EnginePool)
    assert [m.base_url for m in engine.members] == [  # type: ignore[attr-defined]
        "http://127.0.0.1:1/v1",
        "http://127.0.0.1:2/v1",
    ]
    assert isinstance(make_engine("m", base_url="http://127.0.0.1:1"), OpenAIEngine)
