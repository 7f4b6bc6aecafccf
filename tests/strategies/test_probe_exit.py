"""``probe_exit``: the request sequence, the stopping rule, seeds and the ledger, exactly,
on the scripted engine (one word is one token)."""

from __future__ import annotations

import pytest

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.core.types import GenRequest, Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, ProbeExit, make_strategy
from ponder.strategies.probe_exit import PROBE_CUE
from ponder.tasks.demo import DemoTask

PROBLEM = Problem("p1", "What is six times seven?", answer="42")
TASK = DemoTask()
CHAIN_TEXT = "Six times seven : 6 * 7 = 42 . So it is 42 , the answer is \\boxed{42} ."
CHAIN = CHAIN_TEXT.split(" ")


def script(probes: dict[int, str], chain: list[str] = CHAIN):
    """The chain's next words for a chain request; for a probe, the answer scripted for
    the number of chain words it follows, then text past the close."""

    def respond(req: GenRequest, _i: int) -> str:
        if req.continuation.endswith(PROBE_CUE):
            written = len(req.continuation[: -len(PROBE_CUE)].split())
            return probes[written] + "} and so on"
        done = len(req.continuation.split())
        return (" " if done else "") + " ".join(chain[done:])

    return respond


def ctx_for(engine: ScriptedEngine, max_tokens: int = 64, **kw) -> Context:
    return Context(engine=engine, task=TASK, ledger=Ledger(), max_tokens=max_tokens, **kw)


async def test_stops_when_the_last_m_probes_agree_with_the_exact_requests() -> None:
    engine = ScriptedEngine(script({3: "21", 6: "42", 9: "42"}))
    ctx = ctx_for(engine, seed=100)
    result = await ProbeExit(chunk=3, agree=2, probe_tokens=5)(PROBLEM, ctx)

    chain_so_far = ["", " ".join(CHAIN[:3]), " ".join(CHAIN[:6])]
    expected = []
    for j, cont in enumerate(chain_so_far):
        expected.append(("chain", cont, 3, (), 100 + j))
        probed = " ".join(CHAIN[: 3 * (j + 1)]) + PROBE_CUE
        expected.append(("probe", probed, 5, ("}",), 100 + 1000 * (2 * j + 1)))
    got = [
        (
            "probe" if r.continuation.endswith(PROBE_CUE) else "chain",
            r.continuation,
            r.max_tokens,
            r.stop,
            r.seed,
        )
        for r in engine.requests
    ]
    assert got == expected
    assert all(r.messages == TASK.messages(PROBLEM) and r.n == 1 for r in engine.requests)
    assert all(r.temperature == 0.0 for r in engine.requests)

    assert result.answer == "42" and result.votes == {"42": 1.0}
    assert result.meta["stop_reason"] == "agreed"
    assert result.meta["probes"] == [
        {"tokens": 3, "answer": "21"},
        {"tokens": 6, "answer": "42"},
        {"tokens": 9, "answer": "42"},
    ]
    assert (result.meta["chunks"], result.meta["chain_tokens"]) == (3, 9)
    assert result.meta["prefix_reuse"] is False  # the scripted engine prefills all
    (cand,) = result.candidates
    # the chain as far as it went, then the probe that settled it, closed
    assert cand.text == " ".join(CHAIN[:9]) + PROBE_CUE + "42}"
    assert cand.answer == "42" and cand.finish_reason == "probe"


async def test_probe_tokens_are_on_the_ledger_apart_from_the_chain() -> None:
    engine = ScriptedEngine(script({3: "21", 6: "42", 9: "42"}))
    ctx = ctx_for(engine)
    result = await ProbeExit(chunk=3, agree=2)(PROBLEM, ctx)
    kinds = [(e.kind, e.label) for e in ctx.ledger.events]
    assert kinds == [("generate", "chain"), ("probe", "probe")] * 3
    probe = ctx.ledger.total("probe")
    chain = ctx.ledger.total("generate")
    assert probe.completion_tokens == 3 and probe.calls == 3  # "21", "42", "42"
    assert chain.completion_tokens == 9 and chain.calls == 3
    assert result.meta["probe_usage"] == probe.to_dict()
    assert result.meta["chain_usage"] == chain.to_dict()
    assert result.usage == probe + chain == result.candidates[0].usage


async def test_a_chain_that_ends_by_itself_is_answered_from_its_text() -> None:
    # 20 words in chunks of 5: probes after 5, 10 and 15 words disagree; the fourth
    # chunk is the chain's end (the model stopped), and no probe follows it
    engine = ScriptedEngine(script({5: "30", 10: "42", 15: "7"}))
    result = await ProbeExit(chunk=5, agree=2)(PROBLEM, ctx_for(engine))
    assert result.meta["stop_reason"] == "finished"
    assert [p["answer"] for p in result.meta["probes"]] == ["30", "42", "7"]
    assert result.meta["chain_tokens"] == len(CHAIN) and result.meta["chunks"] == 4
    assert result.answer == "42"  # the chain's own \boxed{42}, not the last probe's 7
    assert result.candidates[0].text == " ".join(CHAIN)
    assert result.candidates[0].finish_reason == "stop"
    assert len(engine.requests) == 7


async def test_the_token_limit_ends_the_chain_without_a_last_probe() -> None:
    engine = ScriptedEngine(script({3: "1", 6: "2"}))
    result = await ProbeExit(chunk=3, agree=2)(PROBLEM, ctx_for(engine, max_tokens=8))
    chain = [r for r in engine.requests if not r.continuation.endswith(PROBE_CUE)]
    assert [r.max_tokens for r in chain] == [3, 3, 2]  # the last chunk fills the limit
    assert result.meta["stop_reason"] == "length"
    assert [p["tokens"] for p in result.meta["probes"]] == [3, 6]
    assert result.meta["chain_tokens"] == 8
    # answered as a plain chain cut there would be: its last number
    assert result.answer == TASK.extract(" ".join(CHAIN[:8])) == "7"


async def test_probes_without_an_answer_never_agree() -> None:
    # a probe that does not close within probe_tokens gives no answer
    unclosed = "4 2 ok well"
    probes = {3: unclosed, 6: unclosed, 9: "42", 12: unclosed, 15: "42", 18: unclosed}
    engine = ScriptedEngine(script(probes))
    result = await ProbeExit(chunk=3, agree=2, probe_tokens=2)(PROBLEM, ctx_for(engine))
    answers = [p["answer"] for p in result.meta["probes"]]
    assert answers == [None, None, "42", None, "42", None]
    assert result.meta["stop_reason"] == "finished" and result.answer == "42"


async def test_agree_1_stops_at_the_first_answer() -> None:
    engine = ScriptedEngine(script({4: "42"}))
    result = await ProbeExit(chunk=4, agree=1)(PROBLEM, ctx_for(engine))
    assert result.meta["stop_reason"] == "agreed" and len(engine.requests) == 2
    assert result.answer == "42" and result.meta["chain_tokens"] == 4


async def test_the_chain_samples_the_same_whatever_the_probes_do() -> None:
    runs = []
    for agree, probe_tokens in ((2, 12), (4, 3)):
        engine = ScriptedEngine(script(dict.fromkeys(range(0, 30, 3), "42")))
        strategy = ProbeExit(
            chunk=3, agree=agree, temperature=0.8, top_p=0.9, probe_tokens=probe_tokens
        )
        await strategy(PROBLEM, ctx_for(engine, seed=7))
        chain = [
            (r.continuation, r.seed, r.temperature, r.top_p)
            for r in engine.requests
            if not r.continuation.endswith(PROBE_CUE)
        ]
        probes = [r for r in engine.requests if r.continuation.endswith(PROBE_CUE)]
        assert all(p.temperature == 0.0 for p in probes)
        runs.append(chain)
    short, long = runs
    assert len(short) == 2 and len(long) == 4
    assert long[: len(short)] == short
    assert [seed for _, seed, _, _ in long] == [7, 8, 9, 10]
    assert all((t, p) == (0.8, 0.9) for _, _, t, p in long)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk": 0}, "chunk must be >= 1"),
        ({"agree": 0}, "agree must be >= 1"),
        ({"probe_tokens": 0}, "probe_tokens must be >= 1"),
        ({"probe": "  "}, "probe must hold some text"),
        ({"top_p": 0.0}, "top_p must be in"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_strategy("probe_exit", options)
