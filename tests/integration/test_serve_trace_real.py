"""`ponder serve --trace DIR` as a real process on the embedded smollm2-135m, spoken to by
the official openai client: the trace files, a trace in the reply, streamed usage in
OpenAI's form, a thinking cap whose thinking comes back as ``reasoning_content``, and
open-ended samples selected by meaning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_serve_real import serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
openai = pytest.importorskip("openai")
ASK = [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.fixture(scope="module")
def traced(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("traced")
    args = ["--model", str(smollm2_path), "--served-model-name", "smol",
            "--trace", str(tmp / "traces")]  # fmt: skip
    with serving(tmp, *args) as url:
        client = openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=300)
        yield client, tmp / "traces"


def test_each_request_leaves_its_trace(traced: Any) -> None:
    client, traces = traced
    out = client.chat.completions.create(
        model="majority-3/smol", messages=ASK, max_tokens=24, temperature=0.8, seed=1
    )
    records = [json.loads(line) for line in (traces / f"{out.id}.jsonl").read_text().splitlines()]
    head, *calls, decision = records
    assert head["strategy"] == "majority" and head["messages"] == ASK
    texts = [o["text"] for call in calls for outputs in call["outputs"] for o in outputs]
    assert len(texts) == 3 and all(call["seconds"] > 0 for call in calls)
    generated = sum(call["usage"]["completion_tokens"] for call in calls)
    assert generated == out.usage.completion_tokens > 0
    assert decision["type"] == "decision" and sum(decision["votes"].values()) <= 3
    chosen = decision["chosen"]
    assert out.choices[0].message.content == texts[chosen]


def test_streamed_usage_comes_last_and_a_request_gets_its_trace(traced: Any) -> None:
    client, _ = traced
    stream = client.chat.completions.create(
        model="smol", messages=ASK, max_tokens=16, stream=True,
        stream_options={"include_usage": True}, extra_body={"ponder": {"trace": True}},
    )  # fmt: skip
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0
    assert all(ch.usage is None for ch in chunks[:-1])
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks[:-1] if ch.choices)
    trace = last.model_extra["ponder"]["trace"]
    (call,) = [r for r in trace if r["type"] == "call"]
    assert call["outputs"][0][0]["text"] == text
    assert call["usage"]["completion_tokens"] == last.usage.completion_tokens


def test_a_thinking_cap_returns_the_capped_thinking_apart(traced: Any) -> None:
    client, _ = traced
    out = client.chat.completions.create(
        model="smol", messages=ASK, max_tokens=64,
        extra_body={"ponder": {"strategy": "budget_forcing", "max_thinking_tokens": 12,
                               "max_answer_tokens": 16, "trace": True}},
    )  # fmt: skip
    message = out.choices[0].message
    assert message.model_extra["reasoning_content"] is not None
    assert message.content.startswith("Final answer:")
    think = [r for r in out.model_extra["ponder"]["trace"] if r.get("label") == "think"]
    assert think and think[0]["requests"][0]["max_tokens"] == 12
    assert sum(c["usage"]["completion_tokens"] for c in think) <= 12


OPEN_ENDED = [{"role": "user", "content": "Give me one tip for keeping basil alive indoors."}]


def test_open_ended_samples_are_selected_by_meaning(traced: Any) -> None:
    client, _ = traced
    out = client.chat.completions.create(
        model="majority-3/smol", messages=OPEN_ENDED, max_tokens=40, temperature=0.8, seed=3,
        extra_body={"ponder": {"candidates": True, "trace": True}},
    )  # fmt: skip
    extra = out.model_extra["ponder"]
    info = extra["freeform"]
    checkable = 3 - info["forms"].get("none", 0)
    # auto: the answers' vote only when at least half the samples carry a checkable answer
    assert info["selected_by"] == ("answers" if checkable >= 2 else "usc"), info
    texts = [c["text"] for c in extra["candidates"]]
    assert out.choices[0].message.content in texts
    labels = [r.get("label") for r in extra["trace"] if r["type"] == "call"]
    assert ("usc" in labels) == (info["selected_by"] == "usc")
    # asked for by meaning, semantic clusters of the same kind of samples
    out = client.chat.completions.create(
        model="majority-3/smol", messages=OPEN_ENDED, max_tokens=40, temperature=0.8, seed=4,
        extra_body={"ponder": {"freeform": {"mode": "meaning", "method": "semantic"},
                               "candidates": True}},
    )  # fmt: skip
    info = out.model_extra["ponder"]["freeform"]
    assert info["selected_by"] == "semantic:text" and info["selection"]["clusters"]
    assert sum(out.model_extra["ponder"]["votes"].values()) <= 3
