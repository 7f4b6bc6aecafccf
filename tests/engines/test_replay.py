"""The replay engine serves recorded samples and generates nothing it should not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.runs._toys import ToyTask, toy_responder

from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import Candidate, GenRequest, Problem
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.replay import ReplayEngine, ReplayMiss, SampleBank
from ponder.runs.runner import run_eval
from ponder.runs.store import Record, RunStore
from ponder.strategies import make_strategy

TASK = ToyTask(size=4)


def numbered(request: GenRequest, index: int) -> str:
    """Sample k of a run answers k (so the order samples are served in shows)."""
    return f"sample {index} answer: {index}"


def bank_store(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "bank.db"
    run_eval(
        task=TASK,
        problems=TASK.load(),
        strategy=make_strategy("majority", {"n": n}),
        engine=ScriptedEngine(toy_responder),
        store=path,
        concurrency=1,
        max_tokens=32,
        progress=False,
    )
    return path


def records(path: Path) -> dict[str, Record]:
    with RunStore(path, create=False) as store:
        return {r.problem_id: r for r in store.records()}


def test_majority_replayed_from_its_own_bank_is_the_same_run(tmp_path: Path) -> None:
    bank_path = bank_store(tmp_path)
    bank = SampleBank.from_store(bank_path)
    assert (bank.temperature, bank.top_p, bank.max_tokens) == (0.7, 0.95, 32)
    engine = ReplayEngine(bank, TASK)
    out = tmp_path / "replayed.db"
    run_eval(
        task=TASK,
        problems=TASK.load(),
        strategy=make_strategy("majority", {"n": 4}),
        engine=engine,
        store=out,
        max_tokens=32,
        progress=False,
    )
    before, after = records(bank_path), records(out)
    for pid, rec in before.items():
        again = after[pid]
        assert [c.text for c in again.candidates] == [c.text for c in rec.candidates]
        assert again.answer == rec.answer
        assert again.usage.total_tokens == rec.usage.total_tokens
    assert engine.stats.served == 16 and engine.stats.generated_requests == 0


def test_samples_are_served_in_order_across_requests_and_restart_per_problem() -> None:
    problem = TASK.load()[0]
    engine = ScriptedEngine(numbered)
    bank_samples = asyncio.run(engine.generate([GenRequest(prompt="x", n=5)]))[0]
    cands = tuple(Candidate(c.text, None, c.usage) for c in bank_samples)
    bank = SampleBank.of(
        TASK, [(problem, cands)], temperature=0.7, top_p=0.95, max_tokens=16, model="m"
    )
    replay = ReplayEngine(bank, TASK)
    sample = GenRequest(
        messages=TASK.messages(problem), n=2, max_tokens=16, temperature=0.7, top_p=0.95
    )

    async def go() -> list[list[str]]:
        view = replay.for_problem(problem)
        got = [[c.text for c in cs] for cs in await view.generate([sample, sample])]
        (last,) = await view.generate([GenRequest(**{**sample.__dict__, "n": 1})])
        got.append([c.text for c in last])
        with pytest.raises(ReplayMiss, match="asked for 7 samples in all but the bank recorded 5"):
            await view.generate([sample])
        fresh = replay.for_problem(problem)
        (again,) = await fresh.generate([sample])
        got.append([c.text for c in again])
        return got

    got = asyncio.run(go())
    texts = [c.text for c in cands]
    assert got == [texts[0:2], texts[2:4], texts[4:5], texts[0:2]]
    # each request charges the prompt once; the sibling shows it as cached
    view = replay.for_problem(problem)
    (pair,) = asyncio.run(view.generate([sample]))
    prompt = max(c.usage.prompt_tokens for c in cands)
    assert [c.usage.prompt_tokens for c in pair] == [prompt, 0]
    assert [c.usage.cached_tokens for c in pair] == [0, prompt]
    assert [c.usage.completion_tokens for c in pair] == [
        c.usage.completion_tokens for c in cands[:2]
    ]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n": 5}, "asked for 5 samples in all but the bank recorded 4"),
        ({"n": 2, "temperature": 1.0}, r"temperature=1.0 \(bank: 0.7\)"),
        ({"n": 2, "scorer": "logprob"}, "logprobs"),
    ],
)
def test_what_the_bank_cannot_serve_is_refused(
    tmp_path: Path, options: dict[str, object], match: str
) -> None:
    bank = SampleBank.from_store(bank_store(tmp_path))
    name = "best_of_n" if "scorer" in options else "majority"
    # without an inner engine the replay has no logprobs to offer at all
    with pytest.raises(CapabilityMissing, match=match):
        run_eval(
            task=TASK,
            problems=TASK.load(),
            strategy=make_strategy(name, options),
            engine=ReplayEngine(bank, TASK),
            store=tmp_path / "out.db",
            max_tokens=32,
            concurrency=1,
            progress=False,
        )


def test_new_generation_goes_to_the_inner_engine_or_is_refused(tmp_path: Path) -> None:
    bank = SampleBank.from_store(bank_store(tmp_path))
    revise = make_strategy("revise", {"n": 2})
    # depth 0 is a plain sample (from the bank), depth 1 a revision (new generation)
    inner = ScriptedEngine(lambda r, i: "revised answer: 99")
    replay = ReplayEngine(bank, TASK, inner=inner)
    run_eval(
        task=TASK, problems=TASK.load(), strategy=revise, engine=replay,
        store=tmp_path / "revise.db", max_tokens=32, progress=False,
    )  # fmt: skip
    assert replay.stats.served == 4 and replay.stats.generated_requests == 4
    for rec in records(tmp_path / "revise.db").values():
        assert rec.candidates[1].text == "revised answer: 99"
        assert rec.usage.completion_tokens == sum(c.usage.completion_tokens for c in rec.candidates)
    with pytest.raises(ReplayMiss, match="needs new generation"):
        run_eval(
            task=TASK, problems=TASK.load(), strategy=revise, engine=ReplayEngine(bank, TASK),
            store=tmp_path / "revise2.db", max_tokens=32, concurrency=1, progress=False,
        )  # fmt: skip


def test_bank_must_cover_the_problems_and_come_from_independent_samples(tmp_path: Path) -> None:
    bank = SampleBank.from_store(bank_store(tmp_path))
    more = [*TASK.load(), Problem(id="p99", question="What is 99 plus one?", answer="100")]
    with pytest.raises(ConfigError, match="no samples for 1 of the 5 problems"):
        ReplayEngine(bank, TASK).check_problems(more)
    adaptive = tmp_path / "adaptive.db"
    run_eval(
        task=TASK, problems=TASK.load(), strategy=make_strategy("adaptive_consistency", {}),
        engine=ScriptedEngine(toy_responder), store=adaptive, progress=False,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="holds a 'adaptive_consistency' run"):
        SampleBank.from_store(adaptive)
    with pytest.raises(ConfigError, match="does not exist"):
        SampleBank.from_store(tmp_path / "nope.db")


def test_a_greedy_run_replayed_from_its_own_bank_is_the_same_run(tmp_path: Path) -> None:
    single = tmp_path / "single.db"
    run_eval(
        task=TASK, problems=TASK.load(), strategy=make_strategy("single", {}),
        engine=ScriptedEngine(toy_responder), store=single, max_tokens=32, progress=False,
    )  # fmt: skip
    bank = SampleBank.from_store(single)
    assert (bank.temperature, bank.top_p) == (0.0, 1.0)
    engine = ReplayEngine(bank, TASK)
    out = tmp_path / "again.db"
    run_eval(
        task=TASK, problems=TASK.load(), strategy=make_strategy("single", {}), engine=engine,
        store=out, max_tokens=32, progress=False,
    )  # fmt: skip
    before, after = records(single), records(out)
    assert {p: r.answer for p, r in after.items()} == {p: r.answer for p, r in before.items()}
    assert engine.stats.served == len(before) and engine.stats.generated_requests == 0
    # a sampling strategy asks for samples at another temperature: not this bank's
    with pytest.raises(ReplayMiss):
        asyncio.run(
            ReplayEngine(bank, TASK).for_problem(TASK.load()[0]).generate(
                [GenRequest(messages=TASK.messages(TASK.load()[0]), n=2, temperature=0.7,
                            max_tokens=32)]
            )
        )  # fmt: skip


def test_an_extending_replay_draws_only_the_missing_samples_seeded_as_live(
    tmp_path: Path,
) -> None:
    bank = SampleBank.from_store(bank_store(tmp_path, n=2))
    more = [*TASK.load(), Problem(id="p99", question="What is 99 plus one?", answer="100")]
    inner = ScriptedEngine(lambda r, i: f"new answer: {r.seed}")
    replay = ReplayEngine(bank, TASK, inner=inner, extend=True)
    replay.check_problems(more)  # a problem the bank lacks is drawn in full
    out = tmp_path / "extended.db"
    run_eval(
        task=TASK, problems=more, strategy=make_strategy("majority", {"n": 5}), engine=replay,
        store=out, max_tokens=32, seed=7, concurrency=1, progress=False,
    )  # fmt: skip
    before, after = records(tmp_path / "bank.db"), records(out)
    for pid, rec in after.items():
        assert len(rec.candidates) == 5
        if pid in before:  # the bank's two, then three new ones
            assert [c.text for c in rec.candidates[:2]] == [c.text for c in before[pid].candidates]
            assert all(c.text.startswith("new") for c in rec.candidates[2:])
    # one request per problem for the rest, seeded past the siblings the bank served
    asked = {r.messages: r for r in inner.requests}
    for p in more:
        r = asked[TASK.messages(p)]
        assert r.n == (5 if p.id == "p99" else 3)
        assert (r.temperature, r.top_p, r.max_tokens) == (0.7, 0.95, 32)
    live = {r.messages: r.seed for r in _live_requests(tmp_path, more, seed=7)}
    for p in more:
        shift = 0 if p.id == "p99" else 2
        assert asked[TASK.messages(p)].seed == live[TASK.messages(p)] + shift
    assert replay.stats.served == 8 and replay.stats.extended == 3 * 4 + 5
    with pytest.raises(ConfigError, match="needs a model"):
        ReplayEngine(bank, TASK, extend=True)


def _live_requests(tmp_path: Path, problems: list[Problem], *, seed: int) -> list[GenRequest]:
    engine = ScriptedEngine(toy_responder)
    run_eval(
        task=TASK, problems=problems, strategy=make_strategy("majority", {"n": 5}),
        engine=engine, store=tmp_path / "live.db", max_tokens=32, seed=seed, concurrency=1,
        progress=False,
    )  # fmt: skip
    return engine.requests
