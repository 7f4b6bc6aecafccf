"""The fault suite: upstream down, slow, failing or returning garbage, and 200+ malformed
requests; every one gets the right status and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.engines.fault_server import FaultServer

from ponder.engines.openai import OpenAIEngine
from ponder.engines.scripted import ScriptedEngine
from ponder.serve import ServeSettings, create_app

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)
MODEL = "m"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultServer]:
    with FaultServer(hang_seconds=3.0, flaky_failures=1) as srv:
        yield srv


def served(base_url: str, **engine: Any) -> TestClient:
    engine = {"timeout": 0.5, "max_retries": 0, "backoff_base": 0.01, **engine}
    upstream_engine = OpenAIEngine("up", base_url=base_url, **engine)
    return TestClient(create_app(upstream_engine, ServeSettings(model=MODEL)))


@pytest.mark.parametrize(
    ("route", "status", "kind"),
    [
        ("ok", 200, None),
        ("error500", 502, "upstream_error"),
        ("malformed", 502, "upstream_error"),
        ("badrequest", 502, "upstream_error"),
        ("hang", 504, "timeout_error"),
        ("drop", 502, "upstream_error"),
    ],
)
def test_upstream_faults_get_the_right_status(
    upstream: FaultServer, route: str, status: int, kind: str | None
) -> None:
    with served(upstream.url(route)) as client:
        for _ in range(2):  # the second request is answered as promptly as the first
            r = client.post("/v1/chat/completions", json=ASK)
            assert r.status_code == status, r.text
            if kind is not None:
                assert r.json()["error"]["type"] == kind and r.json()["error"]["message"]
        assert client.get("/health").json() == {
            "status": "ok", "model": MODEL, "running": 0, "waiting": 0,
        }  # fmt: skip


def test_upstream_down_then_a_flaky_one_recovers(upstream: FaultServer) -> None:
    with served("http://127.0.0.1:9/v1") as client:  # nothing listens on port 9
        r = client.post("/v1/chat/completions", json=ASK)
        assert r.status_code == 502 and "engine failed" in r.json()["error"]["message"]
    with served(upstream.url("flaky"), max_retries=2) as client:
        r = client.post("/v1/chat/completions", json=ASK)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "all good"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 100)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip
message = st.fixed_dictionaries(
    {}, optional={"role": st.sampled_from(["user", "system", "robot", 3]), "content": json_values}
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from([MODEL, f"majority-2/{MODEL}", "nope", "", 7, f"bogus-3/{MODEL}"]),
        "messages": st.lists(message, max_size=3) | json_values,
        "max_tokens": st.integers(-3, 5000) | json_values,
        "temperature": st.floats(-1, 3) | json_values,
        "seed": json_values,
        "ponder": json_values | st.fixed_dictionaries({}, optional={
            "strategy": st.sampled_from(["majority", "nope", 3]),
            "n": st.integers(-2, 50) | json_values,
            "budget": st.integers(-5, 10_000) | json_values,
        }),
        "prompt": json_values,
    },
)  # fmt: skip
CLIENT = TestClient(create_app(ScriptedEngine(["\\boxed{1}"]), ServeSettings(model=MODEL)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, route=st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
def test_fuzzed_requests_get_a_clear_status_never_a_crash(body: dict[str, Any], route: str) -> None:
    r = CLIENT.post(route, json=body)
    assert r.status_code in (200, 400, 404), r.text
    if r.status_code != 200:
        error = r.json()["error"]
        assert error["message"] and error["type"]


@settings(max_examples=50, deadline=None)
@given(raw=st.binary(max_size=64))
def test_fuzzed_bytes_are_refused_and_the_server_keeps_serving(raw: bytes) -> None:
    r = CLIENT.post("/v1/chat/completions", content=raw)
    assert r.status_code in (200, 400, 404)
    ok = CLIENT.post("/v1/chat/completions", json=ASK)
    assert ok.status_code == 200
