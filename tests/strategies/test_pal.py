"""``pal``: requests, votes over executed programs, the fallback, hostile programs, and
reading answers from printed output. Programs run for real in the sandbox."""

from __future__ import annotations

import os
import shutil

import pytest

from ponder.core.budget import Ledger
from ponder.core.errors import ConfigError
from ponder.core.sandbox import ALLOW_UNISOLATED_ENV, _bwrap_works
from ponder.core.types import Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.strategies import Context, ProgramAided, make_strategy
from ponder.strategies.pal import PROGRAM_END, PROGRAM_START, pal_messages
from ponder.tasks.demo import DemoTask
from ponder.verifiers.program import printed_answer, program_in

PROBLEM = Problem("p1", "What is six times seven?", answer="42")
TASK = DemoTask()

# what the model writes after the opening fence: the program, the closing fence, chatter
PRINTS_42 = "x = 6 * 7\nprint(x)\n```\nThe program prints 42."
PRINTS_42_FLOAT = "print(6 * 7 * 1.0)\n```"
PRINTS_41 = "print(41)\n```"
RAISES = "print(1 / 0)\n```"
SILENT = "x = 6 * 7\n```"
WORDS = "print('forty-two')\n```"
LOOPS = "while True:\n    pass\n```"
HOGS_MEMORY = "x = bytearray(8 * 1024**3)\nprint(len(x))\n```"
COT = "Six times seven is 42. The answer is \\boxed{42}."


def ctx_for(engine: ScriptedEngine, **kw) -> Context:
    return Context(engine=engine, task=TASK, ledger=Ledger(), max_tokens=64, **kw)


@pytest.fixture(autouse=True)
def _opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # "auto" is bubblewrap where it runs, else a subprocess as nobody under root; these
    # tests opt in to running unisolated where neither can, so they run anywhere
    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "1")


def pal(**kw) -> ProgramAided:
    return ProgramAided(**kw)


async def test_one_request_for_n_programs_that_start_inside_a_fence() -> None:
    engine = ScriptedEngine([PRINTS_42])
    await pal(n=3)(PROBLEM, ctx_for(engine, seed=5))
    (request,) = engine.requests
    assert request.messages == pal_messages(PROBLEM.question)
    assert request.n == 3 and request.continuation == PROGRAM_START
    assert request.stop == (PROGRAM_END,) and request.max_tokens == 64
    assert (request.temperature, request.top_p, request.seed) == (0.7, 0.95, 5)


async def test_n_1_is_greedy_and_shots_put_worked_examples_first() -> None:
    engine = ScriptedEngine([PRINTS_42])
    await pal(shots=2, max_program_tokens=20)(PROBLEM, ctx_for(engine))
    (request,) = engine.requests
    assert (request.temperature, request.top_p, request.max_tokens) == (0.0, 1.0, 20)
    roles = [m.role for m in request.messages or ()]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert request.messages[2].content.startswith(PROGRAM_START)
    assert request.messages[-1].content.endswith(PROBLEM.question)


async def test_executed_answers_vote_and_18_0_votes_with_18() -> None:
    engine = ScriptedEngine([PRINTS_41, PRINTS_42_FLOAT, PRINTS_42, RAISES])
    ctx = ctx_for(engine)
    result = await pal(n=4, temperature=0.8)(PROBLEM, ctx)
    assert result.answer == "42"
    assert result.votes == {"41": 1.0, "42": 2.0}
    assert [c.answer for c in result.candidates] == ["41", "42", "42", None]
    # candidates keep the program as written, fenced, without the chatter after it
    assert result.candidates[2].text == PROGRAM_START + "x = 6 * 7\nprint(x)\n" + PROGRAM_END
    meta = result.meta
    assert (meta["programs"], meta["ran"], meta["failed"]) == (4, 3, 1)
    assert meta["failures"] == {"error": 1} and meta["fallback"] is False
    assert "ZeroDivisionError" in meta["outcomes"][3]["reason"]
    assert [o["status"] for o in meta["outcomes"]] == ["ok", "ok", "ok", "error"]
    # four executions on the ledger, no tokens, their seconds; the tokens are the programs'
    executions = [e for e in ctx.ledger.events if e.kind == "execute"]
    assert len(executions) == 4 and all(e.usage.total_tokens == 0 for e in executions)
    assert ctx.ledger.executions() == 4 == meta["execution"]["executions"]
    assert meta["execution"]["isolation"] == {meta["isolation"]: 4}
    assert all(e.isolation == meta["isolation"] for e in executions)
    assert meta["execution"]["seconds"] == ctx.ledger.seconds("execute")
    assert meta["execution"]["seconds"] == pytest.approx(
        sum(o["seconds"] for o in meta["outcomes"]), abs=1e-3
    )
    assert result.usage == ctx.ledger.total("generate")
    assert result.usage.completion_tokens == sum(
        c.usage.completion_tokens for c in result.candidates
    )


async def test_all_programs_failing_falls_back_to_a_chain_of_thought() -> None:
    texts = iter([RAISES, SILENT, WORDS, "```", COT])
    engine = ScriptedEngine(lambda _req, _i: next(texts))
    ctx = ctx_for(engine)
    result = await pal(n=4, temperature=0.8)(PROBLEM, ctx)
    assert result.answer == "42" and result.votes == {"42": 1.0}
    assert result.meta["fallback"] is True
    assert result.meta["failures"] == {
        "error": 1, "no_answer": 1, "no_output": 1, "no_program": 1
    }  # fmt: skip
    reasons = [o["reason"] for o in result.meta["outcomes"]]
    assert reasons[1:] == [
        "printed nothing", "its output holds no answer", "the completion holds no program"
    ]  # fmt: skip
    # the fallback is a plain greedy sample of the task's own prompt
    _programs, fallback = engine.requests
    assert fallback.messages == TASK.messages(PROBLEM) and fallback.continuation == ""
    assert (fallback.n, fallback.temperature, fallback.stop) == (1, 0.0, ())
    assert [c.answer for c in result.candidates] == [None, None, None, None, "42"]
    assert result.candidates[-1].text == COT
    # three programs ran (the empty one did not), and the fallback's tokens are counted
    assert len([e for e in ctx.ledger.events if e.kind == "execute"]) == 3
    assert result.meta["execution"]["executions"] == 3
    assert result.usage.calls == 2


async def test_no_fallback_means_no_answer() -> None:
    engine = ScriptedEngine([RAISES])
    result = await pal(fallback="none")(PROBLEM, ctx_for(engine))
    assert result.answer is None and result.votes == {} and len(engine.requests) == 1
    assert result.meta["fallback"] is False


async def test_a_hostile_program_is_stopped_and_reported_and_the_others_vote() -> None:
    engine = ScriptedEngine([LOOPS, HOGS_MEMORY, PRINTS_42])
    strategy = pal(n=3, temperature=0.8, cpu_seconds=1, wall_seconds=3, memory_mb=256)
    result = await strategy(PROBLEM, ctx_for(engine))
    assert result.answer == "42" and result.votes == {"42": 1.0}
    loops, hogs, fine = result.meta["outcomes"]
    assert loops["status"] == "timeout" and "CPU" in loops["reason"]
    assert hogs["status"] == "memory" and "256 MB" in hogs["reason"]
    assert fine["status"] == "ok" and result.meta["failures"] == {"memory": 1, "timeout": 1}
    assert loops["seconds"] < 3


@pytest.mark.skipif(
    shutil.which("bwrap") is None or not _bwrap_works(), reason="bubblewrap cannot run here"
)
async def test_under_bubblewrap_a_program_sees_no_host_files_and_no_network() -> None:
    snoop = (
        "import os, socket\n"
        "print(sorted(os.listdir('/')))\n"
        "socket.create_connection(('1.1.1.1', 80), timeout=2)\n```"
    )
    engine = ScriptedEngine([snoop])
    result = await pal(isolation="bwrap", require_isolation=True)(PROBLEM, ctx_for(engine))
    (outcome,) = result.meta["outcomes"]
    assert result.meta["isolation"] == "bwrap"
    assert outcome["status"] == "error" and "Network is unreachable" in outcome["reason"]
    assert "'work'" not in outcome["output"] and "'home'" not in outcome["output"]
    assert result.meta["fallback"] is True  # the failed program gave way to the chain


@pytest.mark.parametrize(
    ("printed", "answer"),
    [
        ("18\n", "18"),
        ("18.0\n", "18"),
        ("17.999999999999996\n", "18"),
        ("0.30000000000000004\n", "0.3"),
        ("3.3333333333333335\n", "3.333333"),
        ("1,234.50\n", "1234.5"),
        ("The answer is 18 dollars.\n", "18"),
        ("step 1: 7\nstep 2: 12\n12\n", "12"),
        ("-2.5\n", "-2.5"),
        ("", None),
        ("  \n", None),
        ("no numbers here\n", None),
    ],
)
def test_printed_answers_read_like_the_tasks_answers(printed: str, answer: str | None) -> None:
    assert printed_answer(printed, TASK.extract) == answer


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("```python\nprint(1)\n```\nok", "print(1)\n"),
        ("Here:\n```py\nprint(2)\n```", "print(2)\n"),
        ("```\nprint(3)\n```", "print(3)\n"),
        ("```python\nprint(4)\n", "print(4)\n"),  # cut by the token limit: runs to the end
        ("```python\n```", None),
        ("print(5)", None),
    ],
)
def test_program_in_finds_the_first_fenced_block(text: str, code: str | None) -> None:
    assert program_in(text) == code


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "n must be >= 1"),
        ({"shots": 3}, "shots must be in 0..2"),
        ({"fallback": "vote"}, "fallback must be one of cot, none"),
        ({"isolation": "docker"}, "isolation must be one of auto, bwrap, unprivileged"),
        ({"temperature": -1.0}, "temperature must be >= 0"),
        ({"cpu_seconds": 0}, "sandbox limits must be positive"),
        ({"max_program_tokens": 0}, "max_program_tokens must be >= 1"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_strategy("pal", options)


def test_cli_reads_an_optional_temperature_as_a_number() -> None:
    from ponder.strategies.options import parse_options

    assert parse_options("pal", ["temperature=0.5", "shots=1"]) == {"temperature": 0.5, "shots": 1}
    assert ProgramAided(n=4).sampling_temperature == 0.7
    assert ProgramAided(n=4, temperature=0.0).sampling_temperature == 0.0


def test_a_pal_that_may_not_run_code_here_stops_when_made(monkeypatch: pytest.MonkeyPatch) -> None:
    import ponder.core.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "_bwrap", lambda: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.delenv(ALLOW_UNISOLATED_ENV)
    with pytest.raises(ConfigError, match="--allow-unisolated-exec"):
        make_strategy("pal", {})
    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "1")
    assert make_strategy("pal", {}).isolation == "auto"
