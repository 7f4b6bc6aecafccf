"""Free-form requests in the server: the samples' answer forms decide between the
answers' vote and a selection by meaning (USC or semantic clusters), per request and
per server, and the reply says which and why."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ponder.core.types import GenRequest
from ponder.engines.scripted import ScriptedEngine
from ponder.grading.forms import answer_form
from ponder.serve import ServeSettings, create_app
from ponder.serve.freeform import FreeformPolicy

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

MODEL = "tiny"
ASK = [{"role": "user", "content": "How do I keep basil alive indoors?"}]
OPEN = [
    "Give it a sunny window and water when the soil feels dry.",
    "Basil wants 6 hours of sun a day; let the topsoil dry between waterings.",
    "Keep it by the brightest window, water only when dry, and pinch off flowers.",
]


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("so \\boxed{42}", "boxed"),
        ("work...\n#### 18", "hashes"),
        ("Here:\n```python\nprint(1)\n```\n", "code"),
        ("(B)", "choice"),
        ("The answer is C.", "choice"),
        ("The answer is 12 apples, because ...", "number"),
        ("2 + 3 = 5", "number"),
        ("<think>it is 5, or 7</think>Paris is the capital.", None),
        ("12 apples.", "number"),
        (OPEN[1], None),  # a number inside prose is no answer
        ("A longer explanation of how the French capital came to be, over about 1500 years.", None),
        ("<think>never finished \\boxed{3}", None),
    ],
)
def test_answer_forms(text: str, form: str | None) -> None:
    assert answer_form(text) == form


def client(engine: Any, **settings: Any) -> Any:
    app = create_app(engine, ServeSettings(model=MODEL, **settings))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p")
    return openai.AsyncOpenAI(api_key="k", base_url="http://p/v1", http_client=http, max_retries=0)


def usc_model(choice: int) -> Any:
    def respond(request: GenRequest, i: int) -> str:
        if "most consistent" in request.messages[-1].content:
            return f"The most consistent response is Response {choice}"
        return OPEN[i % len(OPEN)]

    return respond


async def test_open_ended_samples_are_selected_by_meaning() -> None:
    engine = ScriptedEngine(usc_model(3))
    out = await client(engine).chat.completions.create(model=f"majority-3/{MODEL}", messages=ASK)
    assert out.choices[0].message.content == OPEN[2]
    info = out.model_extra["ponder"]["freeform"]
    assert info["mode"] == "auto" and info["selected_by"] == "usc"
    assert info["forms"] == {"none": 3} and "only 0 of 3" in info["why"]
    assert info["selection"]["selection"]["chosen"] == 2
    # the selection's call is the request's: two engine calls, both in the usage
    assert len(engine.requests) == 2 and out.model_extra["ponder"]["usage"]["calls"] == 2


async def test_samples_with_answers_keep_their_vote() -> None:
    engine = ScriptedEngine(["so \\boxed{4}", "hmm \\boxed{5}", "thus \\boxed{4}"])
    out = await client(engine).chat.completions.create(model=f"majority-3/{MODEL}", messages=ASK)
    info = out.model_extra["ponder"]["freeform"]
    assert info["selected_by"] == "answers" and info["forms"] == {"boxed": 3}
    assert out.model_extra["ponder"]["answer"] == "4" and len(engine.requests) == 1


async def test_per_request_semantic_clusters_and_per_server_answers() -> None:
    texts = ["It is Paris, I think.", "London, surely.", "it is paris, i think"]
    # the server votes on answers always; a request asks for text clusters
    c = client(ScriptedEngine(texts), freeform=FreeformPolicy(mode="answers"))
    plain = await c.chat.completions.create(model=f"majority-3/{MODEL}", messages=ASK)
    assert plain.model_extra["ponder"]["freeform"]["selected_by"] == "answers"
    assert plain.choices[0].message.content == texts[0]  # three different texts: the first
    assert plain.model_extra["ponder"]["votes"] == {t: 1.0 for t in texts}
    out = await c.chat.completions.create(
        model=f"majority-3/{MODEL}", messages=ASK,
        extra_body={"ponder": {"freeform": {"mode": "meaning", "method": "semantic"}}},
    )  # fmt: skip
    info = out.model_extra["ponder"]["freeform"]
    assert info["selected_by"] == "semantic:text" and "asked" in info["why"]
    assert out.model_extra["ponder"]["votes"] == {texts[0]: 2.0, texts[1]: 1.0}


async def test_strategies_with_their_own_rule_and_bad_policies() -> None:
    c = client(ScriptedEngine(OPEN))
    out = await c.chat.completions.create(
        model=f"best_of_n-2/{MODEL}", messages=ASK, extra_body={"ponder": {"scorer": "logprob"}}
    )
    info = out.model_extra["ponder"]["freeform"]
    assert info["selected_by"] == "strategy" and "best_of_n" in info["why"]
    bad_policies = [
        ("sometimes", "mode"),
        ({"method": "vote"}, "method"),
        ({"min_share": 2}, "min_share"),
        ({"colour": 1}, "colour"),
        (3, "freeform"),
    ]
    for bad, match in bad_policies:
        with pytest.raises(openai.BadRequestError, match=match):
            await c.chat.completions.create(
                model=MODEL, messages=ASK, extra_body={"ponder": {"freeform": bad}}
            )


async def test_samples_that_call_tools_vote_on_their_calls_not_by_meaning() -> None:
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    engine = ScriptedEngine([call, call, "I would need to look that up."])
    out = await client(engine).chat.completions.create(model=f"majority-3/{MODEL}", messages=ASK)
    info = out.model_extra["ponder"]["freeform"]
    assert info["selected_by"] == "answers" and info["forms"] == {"tool_call": 2, "none": 1}
    assert len(engine.requests) == 1  # no selection call
    assert out.model_extra["ponder"]["answer"].startswith("tool_calls: get_weather(")
