"""OpenAIEngine against httpx.MockTransport: request bodies, n fallback, usage, logprobs,
retries and the concurrency bound, with no network."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from ponder.core.engine import Engine
from ponder.core.errors import (
    CapabilityMissing,
    ConfigError,
    EngineError,
    EngineTimeout,
    RateLimited,
)
from ponder.core.types import Completion, GenRequest, Message, Usage
from ponder.engines.openai import OpenAIEngine, _retry_after, normalize_base_url, split_total

BASE = "http://testserver:8000"


class Recorder:
    """A MockTransport whose handler sees every request body; ``bodies`` keeps them."""

    def __init__(self, handler: Callable[[dict[str, Any], int], Any]) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[httpx.Headers] = []
        self._handler = handler

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        index = len(self.bodies)
        self.bodies.append(body)
        self.paths.append(request.url.path)
        self.headers.append(request.headers)
        result = self._handler(body, index)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, httpx.Response):
            return result
        return httpx.Response(200, json=result)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    @property
    def hits(self) -> int:
        return len(self.bodies)


def engine(recorder: Recorder, **kwargs: Any) -> OpenAIEngine:
    kwargs.setdefault("backoff_base", 0.001)
    return OpenAIEngine("test-model", base_url=BASE, transport=recorder.transport, **kwargs)


def chat_reply(
    texts: list[str],
    *,
    prompt: int = 10,
    completion: int | None = None,
    cached: int | None = None,
    finish: str = "stop",
    logprobs: list[Any] | None = None,
) -> dict[str, Any]:
    if completion is None:
        completion = sum(len(t.split()) for t in texts)
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    choices = []
    for i, text in enumerate(texts):
        choice: dict[str, Any] = {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }
        if logprobs is not None:
            choice["logprobs"] = logprobs[i]
        choices.append(choice)
    return {"object": "chat.completion", "choices": choices, "usage": usage}


def text_reply(texts: list[str], *, prompt: int = 5, finish: str = "stop") -> dict[str, Any]:
    return {
        "object": "text_completion",
        "choices": [{"index": i, "text": t, "finish_reason": finish} for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": prompt, "completion_tokens": sum(len(t.split()) for t in texts)},
    }


def chat(n: int = 1, **kwargs: Any) -> GenRequest:
    return GenRequest(messages=(Message("user", "What is 2+2?"),), n=n, **kwargs)


def total(completions: list[Completion]) -> Usage:
    return sum((c.usage for c in completions), Usage())


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        ("http://h:8000/v1", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("https://api.example.com/openai/v1", "https://api.example.com/openai/v1"),
        ("https://api.example.com/openai", "https://api.example.com/openai/v1"),
        ("http://h/api/v2", "http://h/api/v2"),
    ],
)
def test_base_url_is_normalised(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("bad", ["localhost:8000", "ftp://h/v1", "http://", ""])
def test_bad_base_url_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalize_base_url(bad)


def test_missing_base_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        OpenAIEngine("m")


@pytest.mark.parametrize(
    "kwargs", [{"max_concurrency": 0}, {"timeout": 0}, {"max_retries": -1}, {"backoff_base": -1}]
)
def test_bad_settings_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        OpenAIEngine("m", base_url=BASE, **kwargs)


async def test_environment_supplies_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://envhost:1234/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    rec = Recorder(lambda body, i: chat_reply(["4"]))
    eng = OpenAIEngine("env-model", transport=rec.transport)
    assert eng.name == "env-model"
    assert eng.base_url == "http://envhost:1234/v1"
    assert isinstance(eng, Engine)
    await eng.generate([chat()])
    assert rec.paths == ["/v1/chat/completions"]
    assert rec.headers[0]["authorization"] == "Bearer sk-secret"
    await eng.aclose()


async def test_no_key_sends_no_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rec = Recorder(lambda body, i: chat_reply(["4"]))
    eng = engine(rec)
    await eng.generate([chat()])
    assert "authorization" not in rec.headers[0]


def test_capabilities_start_optimistic() -> None:
    eng = OpenAIEngine("m", base_url=BASE)
    caps = eng.capabilities
    assert caps.native_n and caps.logprobs and caps.prefix_reuse
    assert caps.top_logprobs == 20
    assert not OpenAIEngine("m", base_url=BASE, native_n=False).capabilities.native_n


# -- request bodies -------------------------------------------------------------------------


async def test_chat_body_carries_sampling_settings() -> None:
    rec = Recorder(lambda body, i: chat_reply(["4"]))
    eng = engine(rec)
    req = chat(
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        seed=11,
        stop=("\n\n", "END"),
        max_tokens=64,
    )
    await eng.generate([req])
    body = rec.bodies[0]
    assert body == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "max_tokens": 64,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "seed": 11,
        "stop": ["\n\n", "END"],
        "cache_prompt": True,
    }


async def test_optional_fields_are_left_out() -> None:
    rec = Recorder(lambda body, i: text_reply(["x"]))
    eng = engine(rec, cache_prompt=False)
    await eng.generate([GenRequest(prompt="Once upon", max_tokens=8)])
    assert rec.paths == ["/v1/completions"]
    body = rec.bodies[0]
    assert body["prompt"] == "Once upon"
    for absent in ("top_k", "seed", "stop", "n", "logprobs", "cache_prompt", "messages"):
        assert absent not in body


async def test_logprob_fields_per_endpoint() -> None:
    rec = Recorder(
        lambda body, i: (
            chat_reply(["a"], logprobs=[{"content": [{"token": "a", "logprob": -0.5}]}])
            if "messages" in body
            else {
                "choices": [
                    {
                        "text": "a",
                        "finish_reason": "stop",
                        "logprobs": {"tokens": ["a"], "token_logprobs": [-0.5]},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        )
    )
    eng = engine(rec)
    await eng.generate(
        [
            chat(logprobs=True),
            chat(top_logprobs=3),
            GenRequest(prompt="p", logprobs=True),
            GenRequest(prompt="p", top_logprobs=4),
        ]
    )
    by_kind = sorted(
        (("messages" in b), b.get("logprobs"), b.get("top_logprobs")) for b in rec.bodies
    )
    assert by_kind == [(False, 0, None), (False, 4, None), (True, True, 0), (True, True, 3)]


async def test_too_many_top_logprobs_is_refused_before_any_call() -> None:
    rec = Recorder(lambda body, i: chat_reply(["a"]))
    eng = engine(rec)
    with pytest.raises(CapabilityMissing, match="at most 20"):
        await eng.generate([chat(top_logprobs=21)])
    assert rec.hits == 0


# -- n: native and fallback -----------------------------------------------------------------


async def test_native_n_uses_one_call_and_splits_usage_exactly() -> None:
    texts = ["four", "it is 4", "the answer is four"]
    rec = Recorder(lambda body, i: chat_reply(texts, prompt=12, completion=10, cached=5))
    eng = engine(rec)
    (comps,) = await eng.generate([chat(n=3, seed=1)])
    assert rec.hits == 1
    assert rec.bodies[0]["n"] == 3
    assert rec.bodies[0]["seed"] == 1
    assert [c.text for c in comps] == texts
    # first choice: prompt minus the server-cached part; siblings: the prompt is shared
    assert comps[0].usage == Usage(7, 5, comps[0].usage.completion_tokens, 1)
    for c in comps[1:]:
        assert (c.usage.prompt_tokens, c.usage.cached_tokens, c.usage.calls) == (0, 12, 0)
    summed = total(comps)
    assert (summed.prompt_tokens, summed.completion_tokens, summed.calls) == (7, 10, 1)
    # 10 tokens split by text length 4 : 7 : 18 -> 1.38, 2.41, 6.21; the leftover unit goes to .41
    assert [c.usage.completion_tokens for c in comps] == [1, 3, 6]
    assert eng.capabilities.native_n


async def test_native_n_split_uses_logprob_counts_when_they_add_up() -> None:
    def lp(tokens: list[str]) -> dict[str, Any]:
        return {"content": [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in tokens]}

    rec = Recorder(
        lambda body, i: chat_reply(
            ["aaaaaaaaaa", "b"],
            completion=5,
            logprobs=[lp(["aaaaaaaaaa"]), lp(["b", "", "", ""])],
        )
    )
    eng = engine(rec)
    (comps,) = await eng.generate([chat(n=2, logprobs=True)])
    assert [c.usage.completion_tokens for c in comps] == [1, 4]


async def test_server_ignoring_n_falls_back_to_seeded_single_requests() -> None:
    rec = Recorder(lambda body, i: chat_reply([f"sample {i}"], prompt=9, completion=2))
    eng = engine(rec)
    (comps,) = await eng.generate([chat(n=3, seed=7, temperature=0.8)])
    assert rec.hits == 3
    assert rec.bodies[0]["n"] == 3 and rec.bodies[0]["seed"] == 7
    later = sorted(rec.bodies[1:], key=lambda b: b["seed"])
    assert [b["seed"] for b in later] == [8, 9]
    assert all("n" not in b for b in later)
    assert comps[0].text == "sample 0"
    assert sorted(c.text for c in comps[1:]) == ["sample 1", "sample 2"]
    # each request's usage goes on its own completion
    assert all(c.usage == Usage(9, 0, 2, 1) for c in comps)
    assert not eng.capabilities.native_n

    # learned: the next request goes straight to singles, seeds from seed + 0
    (again,) = await eng.generate([chat(n=2, seed=100)])
    assert len(again) == 2
    assert rec.hits == 5
    assert sorted(b["seed"] for b in rec.bodies[3:]) == [100, 101]
    assert all("n" not in b for b in rec.bodies[3:])


async def test_fallback_without_seed_sends_no_seed() -> None:
    rec = Recorder(lambda body, i: text_reply([f"s{i}"]))
    eng = engine(rec, native_n=False)
    (comps,) = await eng.generate([GenRequest(prompt="p", n=4)])
    assert len(comps) == 4
    assert rec.hits == 4
    assert all("seed" not in b and "n" not in b for b in rec.bodies)


async def test_more_choices_than_asked_is_an_error() -> None:
    rec = Recorder(lambda body, i: chat_reply(["a", "b"]))
    eng = engine(rec)
    with pytest.raises(EngineError, match="asked for 1 choices"):
        await eng.generate([chat()])


async def test_results_keep_request_order() -> None:
    async def slow_first(body: dict[str, Any], i: int) -> dict[str, Any]:
        content = body["messages"][0]["content"]
        await asyncio.sleep(0.05 if content == "first" else 0)
        return chat_reply([content.upper()])

    rec = Recorder(slow_first)
    eng = engine(rec)
    reqs = [GenRequest(messages=(Message("user", w),)) for w in ("first", "second", "third")]
    out = await eng.generate(reqs)
    assert [r[0].text for r in out] == ["FIRST", "SECOND", "THIRD"]


def test_split_total() -> None:
    assert split_total(10, [4, 7, 18]) == [1, 3, 6]
    assert split_total(7, [0, 0, 0]) == [3, 2, 2]
    assert split_total(0, [5, 5]) == [0, 0]
    assert split_total(5, [1]) == [5]
    assert split_total(3, [1, 1]) == [2, 1]
    assert split_total(3, []) == []
    for t in range(0, 40, 7):
        for weights in ([1, 2, 3], [0, 9, 1], [5, 5, 5, 5], [100, 1]):
            assert sum(split_total(t, weights)) == t


# -- usage and finish reasons ---------------------------------------------------------------


async def test_finish_reasons_are_mapped() -> None:
    reasons = iter(["length", "stop", "eos", None, "tool_calls"])

    def reply(body: dict[str, Any], i: int) -> dict[str, Any]:
        r = chat_reply(["x"])
        r["choices"][0]["finish_reason"] = next(reasons)
        return r

    eng = engine(Recorder(reply))
    out = [(await eng.generate([chat()]))[0][0].finish_reason for _ in range(5)]
    assert out == ["length", "stop", "stop", "stop", "stop"]


async def test_null_chat_content_is_empty_text() -> None:
    def reply(body: dict[str, Any], i: int) -> dict[str, Any]:
        r = chat_reply(["x"], completion=0)
        r["choices"][0]["message"]["content"] = None
        return r

    (comps,) = await engine(Recorder(reply)).generate([chat()])
    assert comps[0].text == ""


@pytest.mark.parametrize(
    "reply",
    [
        {"choices": [{"message": {"content": "x"}}]},
        {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "many"}},
        {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 3}},
        {
            "choices": [{"message": {"content": "x"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": -1},
        },
    ],
)
async def test_missing_or_bad_usage_is_an_error(reply: dict[str, Any]) -> None:
    rec = Recorder(lambda body, i: reply)
    with pytest.raises(EngineError, match="usage"):
        await engine(rec).generate([chat()])
    assert rec.hits == 1


@pytest.mark.parametrize(
    "reply",
    [
        {"usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        {"choices": [], "usage": {}},
        {"choices": "nope"},
        {"error": {"message": "model not loaded"}},
    ],
)
async def test_response_without_choices_is_an_error(reply: dict[str, Any]) -> None:
    rec = Recorder(lambda body, i: reply)
    with pytest.raises(EngineError, match="no choices") as info:
        await engine(rec).generate([chat()])
    assert not info.value.retryable
    assert rec.hits == 1


async def test_choice_without_message_is_an_error() -> None:
    rec = Recorder(lambda body, i: {"choices": [{"text": "x"}], "usage": {}})
    with pytest.raises(EngineError, match="no message content"):
        await engine(rec).generate([chat()])


# -- logprobs -------------------------------------------------------------------------------


async def test_chat_logprobs_are_parsed() -> None:
    content = [
        {
            "token": "4",
            "logprob": -0.25,
            "bytes": [52],
            "top_logprobs": [
                {"token": "four", "logprob": -2.0},
                {"token": "4", "logprob": -0.25},
                {"token": "5", "logprob": -3.0},
            ],
        },
        {"token": ".", "logprob": -1.5, "top_logprobs": [{"token": ".", "logprob": -1.5}]},
    ]
    rec = Recorder(
        lambda body, i: chat_reply(["4."], completion=2, logprobs=[{"content": content}])
    )
    (comps,) = await engine(rec).generate([chat(top_logprobs=2)])
    lps = comps[0].logprobs
    assert lps is not None
    assert [(t.token, t.logprob) for t in lps] == [("4", -0.25), (".", -1.5)]
    # sorted best first and cut to the number asked for
    assert lps[0].top == (("4", -0.25), ("four", -2.0))
    assert lps[1].top == ((".", -1.5),)


async def test_completion_logprobs_are_parsed() -> None:
    logprobs = {
        "tokens": [" 4", ",", " 5"],
        "token_logprobs": [-0.1, -0.2, -0.3],
        "top_logprobs": [{" 4": -0.1, " four": -2.5}, {",": -0.2}, {" 6": -0.05, " 5": -0.3}],
        "text_offset": [0, 2, 3],
    }

    def reply(body: dict[str, Any], i: int) -> dict[str, Any]:
        r = text_reply([" 4, 5"])
        r["choices"][0]["logprobs"] = logprobs
        r["usage"]["completion_tokens"] = 3
        return r

    (comps,) = await engine(Recorder(reply)).generate([GenRequest(prompt="3,", top_logprobs=1)])
    lps = comps[0].logprobs
    assert lps is not None
    assert [(t.token, t.logprob, t.top) for t in lps] == [
        (" 4", -0.1, ((" 4", -0.1),)),
        (",", -0.2, ((",", -0.2),)),
        (" 5", -0.3, ((" 6", -0.05),)),
    ]
    assert comps[0].usage.completion_tokens == 3


async def test_logprobs_without_alternatives() -> None:
    def reply(body: dict[str, Any], i: int) -> dict[str, Any]:
        r = text_reply(["ab"])
        r["choices"][0]["logprobs"] = {
            "tokens": ["a", "b"],
            "token_logprobs": [-1.0, -2.0],
            "top_logprobs": None,
        }
        return r

    (comps,) = await engine(Recorder(reply)).generate([GenRequest(prompt="p", logprobs=True)])
    assert comps[0].logprobs is not None
    assert [(t.token, t.top) for t in comps[0].logprobs] == [("a", ()), ("b", ())]


async def test_logprobs_not_asked_are_not_returned() -> None:
    rec = Recorder(
        lambda body, i: chat_reply(["a"], logprobs=[{"content": [{"token": "a", "logprob": -1}]}])
    )
    (comps,) = await engine(rec).generate([chat()])
    assert comps[0].logprobs is None


@pytest.mark.parametrize("missing", [None, {"content": None}, {"content": []}, {}])
async def test_server_without_logprobs_raises_capability_missing(missing: Any) -> None:
    rec = Recorder(lambda body, i: chat_reply(["some text"], logprobs=[missing]))
    with pytest.raises(CapabilityMissing, match="logprobs"):
        await engine(rec).generate([chat(logprobs=True)])


async def test_malformed_logprobs_are_an_engine_error() -> None:
    rec = Recorder(lambda body, i: chat_reply(["a"], logprobs=[{"content": [{"token": "a"}]}]))
    with pytest.raises(EngineError, match="could not read the logprobs"):
        await engine(rec).generate([chat(logprobs=True)])


# -- retries --------------------------------------------------------------------------------


def failing(statuses: list[int], headers: dict[str, str] | None = None) -> Recorder:
    """Answers with the given error statuses in turn, then successfully."""

    def reply(body: dict[str, Any], i: int) -> Any:
        if i < len(statuses):
            return httpx.Response(statuses[i], text=f"error {statuses[i]}", headers=headers)
        return chat_reply(["ok"])

    return Recorder(reply)


async def test_retry_on_500_then_success() -> None:
    rec = failing([500, 502])
    (comps,) = await engine(rec).generate([chat()])
    assert comps[0].text == "ok"
    assert rec.hits == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_no_retry_on_client_errors(status: int) -> None:
    rec = Recorder(
        lambda body, i: httpx.Response(status, json={"error": {"message": "bad field: top_q"}})
    )
    with pytest.raises(EngineError) as info:
        await engine(rec).generate([chat()])
    assert type(info.value) is EngineError
    assert not info.value.retryable
    assert f"HTTP {status}" in str(info.value)
    assert "bad field: top_q" in str(info.value)
    assert rec.hits == 1


async def test_retries_exhausted_raise_last_error_with_attempts() -> None:
    rec = failing([503] * 10)
    with pytest.raises(EngineError, match=r"HTTP 503.*gave up after 3 attempts") as info:
        await engine(rec, max_retries=2).generate([chat()])
    assert info.value.retryable
    assert rec.hits == 3


async def test_rate_limit_exhausted_is_rate_limited() -> None:
    rec = failing([429] * 10, headers={"Retry-After": "0"})
    with pytest.raises(RateLimited, match="gave up after 2 attempts"):
        await engine(rec, max_retries=1).generate([chat()])
    assert rec.hits == 2


async def test_zero_retries_means_one_attempt() -> None:
    rec = failing([500] * 3)
    with pytest.raises(EngineError, match="gave up after 1 attempts"):
        await engine(rec, max_retries=0).generate([chat()])
    assert rec.hits == 1


async def test_retry_after_overrides_backoff() -> None:
    # the backoff alone would wait 50-100 s; Retry-After: 0 makes the retry immediate
    rec = failing([429], headers={"Retry-After": "0"})
    async with asyncio.timeout(5):
        (comps,) = await engine(rec, backoff_base=100).generate([chat()])
    assert comps[0].text == "ok"
    assert rec.hits == 2


async def test_retry_after_is_capped() -> None:
    rec = failing([503], headers={"Retry-After": "3600"})
    async with asyncio.timeout(5):
        await engine(rec, retry_after_max=0.01).generate([chat()])
    assert rec.hits == 2


def test_retry_after_parsing() -> None:
    assert _retry_after(None) is None
    assert _retry_after("2") == 2.0
    assert _retry_after(" 0.5 ") == 0.5
    assert _retry_after("-3") == 0.0
    assert _retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (_retry_after(later) or 0) <= 31
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert _retry_after(earlier) == 0.0


def test_backoff_grows_with_jitter_and_cap() -> None:
    eng = OpenAIEngine("m", base_url=BASE, backoff_base=1.0, backoff_max=5.0)
    for attempt, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (2.5, 5), (2.5, 5)], 1):
        delays = [eng._delay(attempt, None) for _ in range(50)]
        assert all(low <= d <= high for d in delays)
        assert len(set(delays)) > 1
    assert eng._delay(1, 0.25) == 0.25


def raising(
    exc: Exception, then_ok_after: int | None = None
) -> tuple[httpx.MockTransport, list[int]]:
    hits = [0]

    def handle(request: httpx.Request) -> httpx.Response:
        hits[0] += 1
        if then_ok_after is not None and hits[0] > then_ok_after:
            return httpx.Response(200, json=chat_reply(["ok"]))
        raise exc

    return httpx.MockTransport(handle), hits


async def test_connection_errors_are_retried() -> None:
    transport, hits = raising(httpx.ConnectError("connection refused"), then_ok_after=2)
    eng = OpenAIEngine("m", base_url=BASE, transport=transport, backoff_base=0.001)
    (comps,) = await eng.generate([chat()])
    assert comps[0].text == "ok" and hits[0] == 3


async def test_connection_errors_exhausted() -> None:
    transport, hits = raising(httpx.ConnectError("connection refused"))
    eng = OpenAIEngine("m", base_url=BASE, transport=transport, backoff_base=0.001, max_retries=3)
    with pytest.raises(EngineError, match=r"could not reach.*gave up after 4 attempts") as info:
        await eng.generate([chat()])
    assert type(info.value) is EngineError
    assert hits[0] == 4


async def test_timeouts_are_retried_then_raise_engine_timeout() -> None:
    transport, hits = raising(httpx.ReadTimeout("read timed out"))
    eng = OpenAIEngine("m", base_url=BASE, transport=transport, backoff_base=0.001, max_retries=2)
    with pytest.raises(EngineTimeout, match="gave up after 3 attempts"):
        await eng.generate([chat()])
    assert hits[0] == 3


async def test_slow_answer_hits_the_timeout() -> None:
    async def slow(body: dict[str, Any], i: int) -> dict[str, Any]:
        await asyncio.sleep(10)
        return chat_reply(["late"])

    rec = Recorder(slow)
    with pytest.raises(EngineTimeout, match=r"within 0\.05 s"):
        await engine(rec, timeout=0.05, max_retries=1).generate([chat()])
    assert rec.hits == 2


@pytest.mark.parametrize("body", [b"{not json", b"<html>Bad Gateway</html>", b""])
async def test_malformed_json_raises_immediately(body: bytes) -> None:
    rec = Recorder(lambda b, i: httpx.Response(200, content=body))
    with pytest.raises(EngineError, match="not JSON") as info:
        await engine(rec).generate([chat()])
    assert not info.value.retryable
    assert rec.hits == 1


async def test_json_that_is_not_an_object_is_an_error() -> None:
    rec = Recorder(lambda b, i: httpx.Response(200, json=[1, 2]))
    with pytest.raises(EngineError, match="not an object"):
        await engine(rec).generate([chat()])


async def test_long_error_bodies_are_cut() -> None:
    rec = Recorder(lambda b, i: httpx.Response(400, text="x" * 5000))
    with pytest.raises(EngineError) as info:
        await engine(rec).generate([chat()])
    assert len(str(info.value)) < 500


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrency_is_bounded() -> None:
    in_flight = 0
    peak = 0

    async def reply(body: dict[str, Any], i: int) -> dict[str, Any]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return chat_reply(["x"])

    rec = Recorder(reply)
    eng = engine(rec, max_concurrency=3, native_n=False)
    out = await eng.generate([chat(n=4) for _ in range(3)])
    assert [len(r) for r in out] == [4, 4, 4]
    assert rec.hits == 12
    assert peak == 3


async def test_one_failure_cancels_the_rest() -> None:
    started = 0
    finished = 0

    async def reply(body: dict[str, Any], i: int) -> Any:
        nonlocal started, finished
        started += 1
        if body["messages"][0]["content"] == "bad":
            return httpx.Response(400, text="no")
        await asyncio.sleep(5)
        finished += 1
        return chat_reply(["x"])

    eng = engine(Recorder(reply))
    reqs = [GenRequest(messages=(Message("user", w),)) for w in ("slow", "bad", "slow")]
    async with asyncio.timeout(2):
        with pytest.raises(EngineError, match="HTTP 400"):
            await eng.generate(reqs)
    await asyncio.sleep(0)
    assert started == 3 and finished == 0


# -- lifecycle ------------------------------------------------------------------------------


async def test_aclose_closes_the_client() -> None:
    rec = Recorder(lambda b, i: chat_reply(["x"]))
    eng = engine(rec)
    await eng.generate([chat()])
    client = eng._client
    assert client is not None
    await eng.aclose()
    assert client.is_closed
    await eng.aclose()  # twice is fine
    # and the engine can be used again afterwards
    await eng.generate([chat()])
    await eng.aclose()


def test_usable_from_successive_event_loops() -> None:
    rec = Recorder(lambda b, i: chat_reply(["x"]))
    eng = engine(rec)
    for _ in range(2):
        out = asyncio.run(eng.generate([chat(n=2)]))
        assert len(out[0]) == 2
