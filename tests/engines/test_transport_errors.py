"""``_transport_errors``: the one place OpenAIEngine turns httpx's failures into the
engine's errors, for requests and the health check alike."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ponder.core.errors import EngineError, EngineTimeout
from ponder.engines.openai import OpenAIEngine, _transport_errors

URL = "http://server/v1/chat/completions"


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("slow"), TimeoutError()], ids=["httpx", "asyncio.timeout"]
)
def test_a_timeout_is_an_engine_timeout_saying_what_timed_out(exc: Exception) -> None:
    timed_out = f"no answer from {URL} within 3 s"
    with (
        pytest.raises(EngineTimeout, match=r"^m: no answer from .* within 3 s$") as info,
        _transport_errors("m", URL, timed_out),
    ):
        raise exc
    assert info.value.__cause__ is exc


def test_a_connection_failure_is_retryable_and_names_the_url() -> None:
    exc = httpx.ConnectError("refused")
    with pytest.raises(EngineError) as info, _transport_errors("m", URL, "unused"):
        raise exc
    assert str(info.value) == f"m: could not reach {URL}: ConnectError: refused"
    assert info.value.retryable
    assert not isinstance(info.value, EngineTimeout)


def test_other_errors_pass_through_untouched() -> None:
    with pytest.raises(ValueError, match="not transport"), _transport_errors("m", URL, "unused"):
        raise ValueError("not transport")


def test_health_reports_a_refused_connection_and_a_timeout() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    engine = OpenAIEngine("m", base_url="http://server/v1", transport=httpx.MockTransport(refuse))
    with pytest.raises(EngineError, match=r"^m: could not reach http://server/v1/models: "):
        asyncio.run(engine.health())

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    engine = OpenAIEngine("m", base_url="http://server/v1", transport=httpx.MockTransport(slow))
    with pytest.raises(
        EngineTimeout, match=r"^m: http://server/v1/models did not answer within 0.05 s$"
    ):
        asyncio.run(engine.health(timeout=0.05))
