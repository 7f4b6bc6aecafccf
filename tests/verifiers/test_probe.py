"""The probe verifier and its training, on the scripted engine with fake embeddings.

The fake embedders are functions of the prompt text the engine renders (chat plus the
assistant's continuation). In the toy data a right solution's steps say ``good`` and a
wrong one's say ``bad``, so a feature that reads that word makes correctness linearly
separable; a hash of the text makes features that know nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import warnings
import zlib
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from ponder.analysis.probe_train import (
    LabelSpec,
    Rollout,
    collect_rollouts,
    evaluate_verifier,
    fit_logistic,
    mc_step_labels,
    parse_labels,
    prefix_lengths,
    roc_auc,
    select_l2,
    split_by_problem,
    train_probe,
)
from ponder.core.budget import Ledger
from ponder.core.errors import CapabilityMissing, ConfigError
from ponder.core.types import Candidate, Completion, GenRequest, Message, Problem, Usage
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.store import Record, RunStore
from ponder.strategies import Context
from ponder.verifiers.probe import ProbeModelMismatch, ProbeVerifier
from ponder.verifiers.registry import make_scorer
from ponder.verifiers.steps import join_steps

DIM = 8


class ToyTask:
    """Problem ``pI`` asks for I + 1; solutions end in ``answer: X``."""

    name = "toy"

    def load(self, limit=None):
        return [problem(i) for i in range(limit or 0)]

    def messages(self, problem):
        return (Message("system", "be brief"), Message("user", problem.question))

    def extract(self, text):
        found = re.findall(r"answer: (\S+)", text)
        return found[-1] if found else None

    def is_correct(self, predicted, problem):
        return predicted is not None and predicted == problem.answer


def problem(i: int) -> Problem:
    return Problem(f"p{i:02d}", f"What is {i} plus one?", str(i + 1))


def solution(i: int, right: bool, variant: int) -> str:
    word = "good" if right else "bad"
    answer = i + 1 if right else i + 2
    return (
        f"{word} step one v{variant}\n\n{word} step two v{variant}\n\n"
        f"{word} so the answer: {answer}"
    )


def continuation(text: str) -> str:
    """The assistant's part of the scripted engine's rendered prompt."""
    _, sep, tail = text.partition("\nassistant: ")
    return tail if sep else ""


def noise(text: str, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    return scale * rng.normal(size=DIM)


def separable(text: str) -> list[float]:
    v = noise(text, 0.3)
    tail = continuation(text)
    v[0] += 2.0 if "good" in tail else -2.0 if "bad" in tail else 0.0
    return v.tolist()


def random_features(text: str) -> list[float]:
    return noise(text).tolist()


def engine_with(embedder, name: str = "scripted", script=("unused",)) -> ScriptedEngine:
    return ScriptedEngine(list(script), name=name, embedder=embedder)


def write_store(path: Path, problems: int = 30, per_problem: int = 6, task: str = "toy") -> Path:
    """A run store as ``ponder eval`` writes it: half of each problem's samples right;
    the fifth problem has one sample without any answer."""
    with RunStore(path) as store:
        store.init_or_check({"task": task, "model": "scripted"})
        for i in range(problems):
            p = problem(i)
            cands = [
                Candidate(solution(i, k % 2 == 0, k), None, Usage(10, 0, 12, 1))
                for k in range(per_problem)
            ]
            if i == 4:
                cands[0] = Candidate("bad start, no answer yet", None, Usage())
            store.put(
                Record(
                    problem_id=p.id,
                    idx=i,
                    question=p.question,
                    reference=p.answer,
                    answer=p.answer,
                    correct=True,
                    candidates=tuple(cands),
                )
            )
    return path


def toy_rollouts(tmp_path: Path, **kw) -> list[Rollout]:
    return collect_rollouts([write_store(tmp_path / "run.db", **kw)], ToyTask())


# -- AUC ---------------------------------------------------------------------------------


def pairwise_auc(scores, labels) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_hand_computed_values():
    # positives 0.35 and 0.8 beat 1 and 2 of the negatives {0.1, 0.4}: 3 of 4 pairs
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # ties count a half: the 0.5 positive ties both 0.5 negatives (1), 0.9 beats both (2)
    assert roc_auc([0.5, 0.5, 0.5, 0.9], [1, 0, 0, 1]) == pytest.approx(0.75)
    assert roc_auc([0.3, 0.3, 0.3], [1, 0, 1]) == pytest.approx(0.5)
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert roc_auc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0


def test_auc_equals_the_pairwise_definition_with_many_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=60).astype(float)  # five values: ties everywhere
    labels = rng.random(60) < 0.4
    assert roc_auc(scores, labels) == pytest.approx(pairwise_auc(scores, labels))


def test_auc_is_undefined_with_one_class():
    assert math.isnan(roc_auc([0.2, 0.9], [1, 1]))
    assert math.isnan(roc_auc([], []))
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1])


# -- logistic regression -----------------------------------------------------------------


def test_logistic_fit_is_a_stationary_point_in_both_regimes():
    """Few features (direct Newton) and more features than examples (the fit in the
    span of the examples) must both zero the full gradient."""
    rng = np.random.default_rng(0)
    for n, d in ((200, 5), (20, 50)):
        x = rng.normal(size=(n, d))
        y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(float)
        w = rng.random(n) + 0.5
        coef, bias = fit_logistic(x, y, l2=0.1, sample_weight=w)
        p = 1 / (1 + np.exp(-(x @ coef + bias)))
        s = w / w.sum()
        assert np.abs(x.T @ (s * (p - y)) + 0.1 * coef).max() < 1e-6
        assert abs(float(s @ (p - y))) < 1e-6
        assert coef[0] == coef.max()


def test_stronger_l2_shrinks_the_weights_and_fits_are_deterministic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 4))
    y = (x[:, 1] > 0).astype(float)
    weak, _ = fit_logistic(x, y, l2=1e-3)
    strong, _ = fit_logistic(x, y, l2=1.0)
    assert np.linalg.norm(strong) < np.linalg.norm(weak)
    again, _ = fit_logistic(x, y, l2=1e-3)
    assert np.array_equal(weak, again)
    with pytest.raises(ConfigError):
        fit_logistic(x, y, l2=0.0)


def test_l2_selection_prefers_strong_penalties_on_noise():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 30))
    y = (rng.random(120) < 0.5).astype(float)
    groups = [f"g{i // 4}" for i in range(120)]
    chosen, losses = select_l2(x, y, groups)
    assert chosen >= 0.1
    assert set(losses) == {1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0}
    assert losses[chosen] == min(losses.values())


# -- data --------------------------------------------------------------------------------


def test_split_by_problem_is_disjoint_seeded_and_sized():
    ids = [f"q{i}" for i in range(20)] * 3  # repeated ids: one problem, many rollouts
    train, held = split_by_problem(ids, 0.3, seed=7)
    assert set(train).isdisjoint(held)
    assert set(train) | set(held) == set(ids)
    assert len(held) == 6
    assert (train, held) == split_by_problem(reversed(ids), 0.3, seed=7)
    assert held != split_by_problem(ids, 0.3, seed=8)[1]
    assert len(split_by_problem(["a", "b"], 0.01)[1]) == 1  # a positive fraction holds one out
    assert split_by_problem(ids, 0.0)[1] == []
    with pytest.raises(ConfigError):
        split_by_problem(ids, 1.0)


def test_rollouts_are_graded_by_the_task(tmp_path):
    rollouts = toy_rollouts(tmp_path, problems=6)
    assert len(rollouts) == 36
    first = rollouts[0]
    assert first.problem == problem(0)
    assert first.correct and first.answer == "1" and first.model == "scripted"
    assert not rollouts[1].correct and rollouts[1].answer == "2"
    no_answer = next(r for r in rollouts if r.problem.id == "p04")
    assert no_answer.answer is None and not no_answer.correct


def test_rollouts_from_a_store_of_another_task_are_refused(tmp_path):
    path = write_store(tmp_path / "gsm.db", problems=2, task="gsm8k")
    with pytest.raises(ConfigError, match="gsm8k"):
        collect_rollouts([path], ToyTask())


def test_rollouts_take_problems_from_the_data_when_given(tmp_path):
    path = write_store(tmp_path / "run.db", problems=3)
    data = {
        p.id: Problem(p.id, p.question, p.answer, {"source": "data"})
        for p in map(problem, range(3))
    }
    rollouts = collect_rollouts([path], ToyTask(), problems=data, limit=2)
    assert {r.problem.id for r in rollouts} == {"p00", "p01"}
    assert all(r.problem.meta == {"source": "data"} for r in rollouts)
    with pytest.raises(ConfigError, match="p01"):
        collect_rollouts([path], ToyTask(), problems={"p00": data["p00"]})


def test_prefix_lengths_cap_the_cost_and_keep_the_whole_solution():
    assert prefix_lengths(3, 8) == [1, 2, 3]
    picked = prefix_lengths(20, 4)
    assert len(picked) == 4 and picked[-1] == 20 and picked[0] == 1
    assert prefix_lengths(20, 1) == [20]
    with pytest.raises(ConfigError):
        prefix_lengths(3, 0)


def test_label_specs_parse():
    assert parse_labels("outcome") == LabelSpec("outcome")
    assert parse_labels("mc:4") == LabelSpec("mc", 4)
    assert str(parse_labels("mc:4")) == "mc:4"
    for bad in ("mc", "mc:0", "mc:x", "soft", "outcome:2"):
        with pytest.raises(ConfigError):
            parse_labels(bad)


# -- Monte-Carlo labels ------------------------------------------------------------------


async def test_mc_labels_sample_from_each_unlabelled_prefix_and_grade_the_whole_text():
    task = ToyTask()
    p = problem(3)
    right = Rollout(p, "good a\n\ngood b\n\nanswer: 4", "4", True)
    # shares its first step with the right rollout, then goes wrong twice
    wrong = Rollout(p, "good a\n\nbad c\n\nbad d\n\nanswer: 9", "9", False)
    other = Rollout(p, "bad e\n\nanswer: 7", "7", False)

    def respond(request: GenRequest, index: int) -> str:
        # continuing from "bad c" can still recover; from "bad d" it never does
        if request.continuation.endswith("bad c"):
            return "\n\nfixed it, answer: 4" if index % 3 == 2 else "\n\nanswer: 5"
        return "\n\nanswer: 8"

    engine = ScriptedEngine(respond)
    ledger = Ledger()
    labels = await mc_step_labels(
        engine,
        task,
        [right, wrong, other],
        [[1, 2, 3], [1, 2, 3, 4], [1, 2]],
        k=3,
        temperature=0.9,
        max_tokens=64,
        seed=5,
        ledger=ledger,
    )
    # right: every prefix is 1 for free; wrong: its first step is the right rollout's,
    # "bad c" recovers in one of 3 samples, "bad d" never, the whole solution is wrong
    assert labels == [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0]]
    asked = [r.continuation for r in engine.requests]
    assert asked == ["good a\n\nbad c", "good a\n\nbad c\n\nbad d", "bad e"]
    for r in engine.requests:
        assert r.messages == task.messages(p)
        assert (r.n, r.temperature, r.max_tokens) == (3, 0.9, 64)
        assert r.seed is not None
    assert len({r.seed for r in engine.requests}) == 3
    (event,) = ledger.events
    assert event.kind == "generate" and event.label == "mc-labels"
    assert event.usage.completion_tokens > 0


async def test_mc_labels_refuse_rollouts_of_several_problems():
    a = Rollout(problem(1), "x\n\nanswer: 2", "2", True)
    b = Rollout(problem(2), "y\n\nanswer: 1", "1", False)
    with pytest.raises(ValueError):
        await mc_step_labels(ScriptedEngine(["z"]), ToyTask(), [a, b], [[1], [1]], k=2)


# -- training ----------------------------------------------------------------------------


async def test_a_probe_on_separable_features_ranks_held_out_rollouts_perfectly(tmp_path):
    rollouts = toy_rollouts(tmp_path)
    engine = engine_with(separable)
    report = await train_probe(rollouts, task=ToyTask(), engine=engine, heldout=0.3, seed=0)
    assert report.heldout_outcome_auc > 0.99
    assert report.heldout_step_auc > 0.99
    assert report.train_auc > 0.99
    assert (report.train_problems, report.heldout_problems) == (21, 9)
    assert report.train_rollouts + report.heldout_rollouts == len(rollouts)
    # three steps per solution, all embedded; "no answer yet" is one step
    assert report.train_examples + report.heldout_examples == 3 * len(rollouts) - 2
    assert report.feature_usage.calls == 3 * len(rollouts) - 2
    assert report.label_usage.calls == 0  # outcome labels sample nothing
    probe = report.probe
    held = set(probe.heldout_ids)
    assert len(held) == 9
    trained_on = {r.problem.id for r in rollouts} - held
    assert probe.meta["train"]["problems"] == len(trained_on)
    assert probe.meta["labels"] == "outcome" and probe.model == "scripted"


async def test_a_probe_on_uninformative_features_is_near_chance(tmp_path):
    rollouts = toy_rollouts(tmp_path, problems=60)
    report = await train_probe(
        rollouts, task=ToyTask(), engine=engine_with(random_features), heldout=0.5
    )
    assert 0.35 < report.heldout_outcome_auc < 0.65
    assert report.l2 >= 0.1  # cross-validation sees there is nothing to fit


async def test_training_with_mc_labels_samples_only_wrong_rollouts_prefixes(tmp_path):
    rollouts = toy_rollouts(tmp_path, problems=10, per_problem=2)
    engine = engine_with(separable, script=["\n\nanswer: 0"])
    report = await train_probe(
        rollouts, task=ToyTask(), engine=engine, labels="mc:2", heldout=0.2, max_tokens=32
    )
    # per problem one wrong rollout of 3 steps: its 2 partial prefixes are sampled
    assert len(engine.requests) == 2 * 10
    assert all(r.n == 2 and r.continuation for r in engine.requests)
    assert report.label_usage.calls == 20
    assert report.heldout_outcome_auc > 0.99
    assert report.probe.meta["labels"] == "mc:2"


async def test_training_needs_both_classes_and_an_embedding_engine(tmp_path):
    good = [r for r in toy_rollouts(tmp_path, problems=8) if r.correct]
    with pytest.raises(ConfigError, match="correct"):
        await train_probe(good, task=ToyTask(), engine=engine_with(separable))
    with pytest.raises(CapabilityMissing, match="embeddings"):
        await train_probe(good, task=ToyTask(), engine=ScriptedEngine(["x"]))


# -- the verifier ------------------------------------------------------------------------


def small_probe(**kw) -> ProbeVerifier:
    w = np.zeros(DIM)
    w[0] = 3.0
    return ProbeVerifier(w, 0.0, np.zeros(DIM), np.ones(DIM), model="scripted", **kw)


async def test_probe_scores_steps_through_a_context_and_records_the_cost():
    probe = small_probe()
    ctx = Context(engine=engine_with(separable), task=ToyTask(), ledger=Ledger())
    p = problem(2)
    comps = [
        Completion(solution(2, True, 0), "stop", Usage()),
        Completion(solution(2, False, 1), "stop", Usage()),
    ]
    scores = await ctx.score(p, comps, probe)
    assert scores[0].value > 0.99 and scores[1].value < 0.01
    assert len(scores[0].steps) == 3
    (event,) = ctx.ledger.events
    assert event.kind == "score" and event.label == "probe" and event.usage.calls == 6
    again = await ctx.score(p, comps, probe)  # every prefix is cached now
    assert again == scores and len(ctx.ledger.events) == 1


async def test_probe_embeds_what_the_generator_saw():
    seen: list[str] = []

    def spy(text: str) -> list[float]:
        seen.append(text)
        return [0.0] * DIM

    task = ToyTask()
    ctx = Context(engine=engine_with(spy), task=task, ledger=Ledger())
    await small_probe().score_paths(problem(1), [["s1", "s2"]], ctx)
    chat = "\n".join(f"{m.role}: {m.content}" for m in task.messages(problem(1)))
    assert seen == [chat + "\nassistant: s1", chat + "\nassistant: " + join_steps(["s1", "s2"])]


async def test_probe_refuses_other_dimensions_models_and_engines_without_embeddings():
    p = problem(1)
    comps = [Completion("a\n\nb", "stop", Usage())]
    short = Context(engine=engine_with(lambda t: [0.0] * 5), task=ToyTask(), ledger=Ledger())
    with pytest.raises(ConfigError, match="size 8"):
        await short.score(p, comps, small_probe())
    other = Context(engine=engine_with(separable, name="llama"), task=ToyTask(), ledger=Ledger())
    with pytest.raises(ConfigError, match="llama"):
        await other.score(p, comps, small_probe())
    with pytest.warns(ProbeModelMismatch):
        await other.score(p, comps, small_probe(model_check="warn"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        await other.score(p, comps, small_probe(model_check="ignore"))
    plain = Context(engine=ScriptedEngine(["x"]), task=ToyTask(), ledger=Ledger())
    with pytest.raises(CapabilityMissing, match="embeddings"):
        await plain.score(p, comps, small_probe())


def test_probe_arrays_must_agree():
    with pytest.raises(ConfigError):
        ProbeVerifier(np.ones(3), 0.0, np.zeros(4), np.ones(3), model="m")
    with pytest.raises(ConfigError):
        ProbeVerifier(np.ones(3), 0.0, np.zeros(3), np.zeros(3), model="m")
    with pytest.raises(ConfigError):
        small_probe(model_check="sometimes")


# -- files -------------------------------------------------------------------------------


async def test_save_and_load_round_trip(tmp_path):
    rollouts = toy_rollouts(tmp_path)
    report = await train_probe(rollouts, task=ToyTask(), engine=engine_with(separable))
    path = report.probe.save(tmp_path / "probe.npz")
    loaded = ProbeVerifier.load(path)
    x = np.random.default_rng(0).normal(size=(5, DIM))
    assert np.array_equal(loaded.probability(x), report.probe.probability(x))
    assert loaded.heldout_ids == report.probe.heldout_ids
    assert loaded.meta["heldout"]["outcome_auc"] == pytest.approx(report.heldout_outcome_auc)
    assert (loaded.model, loaded.dim, loaded.segmentation) == ("scripted", DIM, "blank")
    assert ProbeVerifier.load(path, segmentation="lines").segmentation == "lines"
    # the registry builds it from a spec
    scorer = make_scorer(f"probe:{path},agg=min")
    assert isinstance(scorer, ProbeVerifier) and scorer.aggregation == "min"
    # no stray temporary files beside it
    assert sorted(p.name for p in tmp_path.iterdir() if "probe" in p.name) == ["probe.npz"]


def test_load_refuses_files_that_are_not_probes(tmp_path):
    with pytest.raises(ConfigError, match="no probe file"):
        ProbeVerifier.load(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ConfigError):
        ProbeVerifier.load(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", weights=np.ones(2))
    with pytest.raises(ConfigError, match="missing"):
        ProbeVerifier.load(tmp_path / "other.npz")
    # an object array would need unpickling: refused, never executed
    arrays = {k: np.ones(2) for k in ("weights", "mean", "std")}
    np.savez(
        tmp_path / "pickled.npz",
        bias=np.array(0.0),
        meta=np.array([{"a": 1}], dtype=object),
        **arrays,
    )
    with pytest.raises(ConfigError):
        ProbeVerifier.load(tmp_path / "pickled.npz")
    meta = json.dumps({"format": "ponder-probe", "version": 99, "dim": 2, "model": "m"})
    np.savez(tmp_path / "future.npz", bias=np.array(0.0), meta=np.array(meta), **arrays)
    with pytest.raises(ConfigError, match="newer"):
        ProbeVerifier.load(tmp_path / "future.npz")


# -- evaluating verifiers ----------------------------------------------------------------


def judge_says(request: GenRequest, _index: int) -> str:
    assert request.messages is not None
    return "Yes" if "good" in request.messages[-1].content else "No"


async def test_evaluate_verifier_measures_a_judge_with_its_cost(tmp_path):
    rollouts = toy_rollouts(tmp_path, problems=6)
    result = await evaluate_verifier(
        "judge",
        rollouts,
        task=ToyTask(),
        engine=ScriptedEngine(judge_says),
        problem_ids=["p00", "p01"],
    )
    assert (result.problems, result.rollouts, result.positive) == (2, 12, 6)
    assert result.auc == 1.0 and result.best_of_n == 1.0 and result.oracle == 1.0
    assert result.usage.calls == 12 and result.usage.completion_tokens == 12
    assert result.to_dict()["base_rate"] == 0.5


async def test_evaluate_verifier_on_a_probe_s_held_out_problems(tmp_path):
    rollouts = toy_rollouts(tmp_path)
    engine = engine_with(separable)
    report = await train_probe(rollouts, task=ToyTask(), engine=engine)
    path = report.probe.save(tmp_path / "probe.npz")
    result = await evaluate_verifier(
        f"probe:{path}",
        rollouts,
        task=ToyTask(),
        engine=engine,
        problem_ids=ProbeVerifier.load(path).heldout_ids,
    )
    assert result.problems == report.heldout_problems
    assert result.auc == pytest.approx(report.heldout_outcome_auc)
    assert result.usage.calls == report.heldout_examples


async def test_evaluate_verifier_refuses_logprob_scorers_and_empty_selections(tmp_path):
    rollouts = toy_rollouts(tmp_path, problems=2)
    with pytest.raises(ConfigError, match="logprobs"):
        await evaluate_verifier("logprob", rollouts, task=ToyTask(), engine=ScriptedEngine(["x"]))
    with pytest.raises(ConfigError, match="no rollouts"):
        await evaluate_verifier(
            "judge", rollouts, task=ToyTask(), engine=ScriptedEngine(["x"]), problem_ids=["zz"]
        )


# -- the command line --------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    from ponder.cli.verifier import add_parser as add_verifier_parser

    p = argparse.ArgumentParser(prog="ponder")
    add_verifier_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_cli_train_then_eval_on_the_held_out_problems(tmp_path, monkeypatch, capsys):
    import ponder.cli.args
    import ponder.tasks.registry as registry
    from ponder.cli.verifier import run_verifier

    def fake_engine(args):
        assert args.model == "scripted"  # defaults to the model that wrote the store
        return ScriptedEngine(judge_says, name="scripted", embedder=separable)

    monkeypatch.setattr(ponder.cli.args, "engine", fake_engine)
    monkeypatch.setitem(registry._FACTORIES, "toy", (lambda data, **kw: ToyTask(), ToyTask))
    store = write_store(tmp_path / "run.db")
    out = tmp_path / "probe.npz"
    args = parser().parse_args(
        ["verifier", "train", str(store), "--out", str(out), "--no-progress", "--seed", "1"]
    )
    assert run_verifier(args) == 0
    text = capsys.readouterr().out
    assert "held out: 9 problems, 54 rollouts" in text
    assert re.search(r"outcome 1\.000", text) and f"wrote {out}" in text
    assert ProbeVerifier.load(out).meta["stores"] == [str(store)]

    for spec in (f"probe:{out}", "judge"):
        args = parser().parse_args(
            [
                "verifier",
                "eval",
                str(store),
                "--verifier",
                spec,
                "--heldout-of",
                str(out),
                "--no-progress",
                "--json",
            ]
        )
        assert run_verifier(args) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["problems"] == 9 and result["auc"] == 1.0
        assert result["usage"]["calls"] > 0 and result["heldout_of"] == str(out)


def test_cli_help_names_the_options(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["verifier", "train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--labels", "--heldout", "--max-prefixes", "--l2", "--out", "mc:K", "--model"):
        assert flag in text
    with pytest.raises(SystemExit):
        parser().parse_args(["verifier", "eval", "--help"])
    text = capsys.readouterr().out
    assert "--heldout-of" in text and "--verifier" in text


def test_cli_rejects_bad_settings(tmp_path, monkeypatch):
    from ponder.cli.verifier import run_verifier

    store = write_store(tmp_path / "run.db", problems=2)
    args = parser().parse_args(
        ["verifier", "train", str(store), "--out", str(tmp_path / "p.npz"), "--labels", "mc"]
    )
    with pytest.raises(ConfigError, match="mc:K"):
        run_verifier(args)
    args = parser().parse_args(
        ["verifier", "train", str(store), "--out", str(tmp_path / "p.npz"), "--l2", "-1"]
    )
    with pytest.raises(ConfigError, match="l2"):
        run_verifier(args)
    args = parser().parse_args(["verifier", "eval", str(store), "--verifier", "judge"])
    with pytest.raises(ConfigError, match="toy"):  # the store's task is not a known task
        run_verifier(args)


# -- cross-fitting -----------------------------------------------------------------------


async def test_cross_fitting_scores_every_problem_with_a_fold_that_never_saw_it(tmp_path):
    rollouts = toy_rollouts(tmp_path)
    report = await train_probe(
        rollouts, task=ToyTask(), engine=engine_with(separable), heldout=0.0, folds=3
    )
    probe = report.probe
    problems = {r.problem.id for r in rollouts}
    assert report.heldout_problems == len(problems) == 30
    assert report.heldout_rollouts == len(rollouts)
    assert report.heldout_outcome_auc > 0.99
    # the folds partition the problems; every problem counts as unseen
    assert len(probe.folds) == 3
    assert set().union(*(f.problem_ids for f in probe.folds)) == problems
    assert sum(len(f.problem_ids) for f in probe.folds) == 30
    assert set(probe.heldout_ids) == problems
    x = np.random.default_rng(1).normal(size=(4, DIM))
    for fold in probe.folds:
        pid = sorted(fold.problem_ids)[0]
        assert np.array_equal(probe.probability(x, pid), fold.probability(x))
        assert not np.allclose(probe.probability(x, pid), probe.probability(x))
    # a problem outside every fold gets the model fitted on all of them
    assert np.array_equal(probe.probability(x, "unseen"), probe.probability(x))

    # saved and loaded, it still scores each problem with its own fold
    path = probe.save(tmp_path / "cross.npz")
    loaded = ProbeVerifier.load(path)
    assert [f.problem_ids for f in loaded.folds] == [f.problem_ids for f in probe.folds]
    pid = sorted(probe.folds[1].problem_ids)[0]
    assert np.array_equal(loaded.probability(x, pid), probe.probability(x, pid))
    with np.load(path) as data:
        assert json.loads(str(data["meta"]))["version"] == 2


async def test_cross_fitted_auc_on_uninformative_features_is_near_chance(tmp_path):
    rollouts = toy_rollouts(tmp_path, problems=60)
    report = await train_probe(
        rollouts, task=ToyTask(), engine=engine_with(random_features), heldout=0.0, folds=4,
        l2=1e-4,
    )  # fmt: skip
    # out of fold there is nothing to find, even when the full fit memorises its data
    assert 0.35 < report.heldout_outcome_auc < 0.65
    assert report.train_auc > report.heldout_outcome_auc


async def test_cross_fitting_options_are_checked(tmp_path):
    rollouts = toy_rollouts(tmp_path, problems=4)
    engine = engine_with(separable)
    with pytest.raises(ConfigError, match="at least 2"):
        await train_probe(rollouts, task=ToyTask(), engine=engine, heldout=0.0, folds=1)
    with pytest.raises(ConfigError, match="set heldout to 0"):
        await train_probe(rollouts, task=ToyTask(), engine=engine, heldout=0.3, folds=2)
    with pytest.raises(ConfigError, match="5 folds need at least 5 problems"):
        await train_probe(rollouts, task=ToyTask(), engine=engine, heldout=0.0, folds=5)
    probe = (await train_probe(rollouts, task=ToyTask(), engine=engine, heldout=0.0, folds=2)).probe
    a, b = probe.folds
    twice = type(a)(a.weights, a.bias, a.mean, a.std, a.problem_ids | b.problem_ids)
    with pytest.raises(ConfigError, match="is in probe folds"):
        ProbeVerifier(probe.weights, probe.bias, probe.mean, probe.std, model="m", folds=[twice, b])
    # a plain probe stays readable by older readers
    with np.load(small_probe().save(tmp_path / "plain.npz")) as data:
        assert json.loads(str(data["meta"]))["version"] == 1


def test_cli_train_cross_fits_with_folds(tmp_path, monkeypatch, capsys):
    import ponder.cli.args
    import ponder.tasks.registry as registry
    from ponder.cli.verifier import run_verifier

    monkeypatch.setattr(
        ponder.cli.args, "engine", lambda args: ScriptedEngine(judge_says, embedder=separable)
    )
    monkeypatch.setitem(registry._FACTORIES, "toy", (lambda data, **kw: ToyTask(), ToyTask))
    store = write_store(tmp_path / "run.db")
    out = tmp_path / "probe.npz"
    args = parser().parse_args(
        ["verifier", "train", str(store), "--out", str(out), "--no-progress", "--folds", "3"]
    )
    assert run_verifier(args) == 0
    text = capsys.readouterr().out
    assert "cross-fitted (3 folds): 30 problems, 180 rollouts" in text
    assert "rollouts: 180 of 30 problems" in text
    assert len(ProbeVerifier.load(out).folds) == 3
