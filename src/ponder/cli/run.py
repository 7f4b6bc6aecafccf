"""``ponder run``: answer one question with a strategy."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING, Any

from ponder.cli import args as cli_args
from ponder.cli.args import (
    add_answer_type_arg,
    add_engine_args,
    add_exec_arg,
    add_strategy_args,
    strategy_options,
    token_budget,
)
from ponder.runs.settings import DEFAULT_MAX_TOKENS

if TYPE_CHECKING:
    from ponder.core.types import Result

__all__ = ["COMMANDS", "add_parser", "cmd_run"]


def add_parser(subparsers: Any) -> None:
    run = subparsers.add_parser("run", help="answer one question with a strategy")
    run.add_argument("question")
    add_engine_args(run)
    add_strategy_args(run)
    add_answer_type_arg(run)
    add_exec_arg(run)
    run.add_argument("--json", action="store_true", help="print a JSON object")
    run.add_argument("--show", action="store_true", help="print every candidate's text")


def cmd_run(args: argparse.Namespace) -> int:
    from ponder.api import answer_question

    task = None
    if args.answer_type == "free":
        from ponder.tasks import FreeformTask

        task = FreeformTask()
    options = strategy_options(args)
    # looked up on the module when called, so a test can substitute the engine
    engine = cli_args.engine(args)

    async def go() -> Result:
        try:
            return await answer_question(
                args.question,
                engine=engine,
                strategy=args.strategy,
                options=options,
                task=task,
                max_tokens=args.max_tokens or DEFAULT_MAX_TOKENS,
                seed=args.seed,
                budget=token_budget(args),
            )
        finally:
            await engine.aclose()

    result = asyncio.run(go())
    if args.json:
        print(json.dumps(_json(result, engine.name, show=args.show), indent=2))
    else:
        _print_text(result, show=args.show)
    return 0


def _json(result: Result, model: str, *, show: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "answer": result.answer,
        "votes": dict(result.votes),
        "usage": result.usage.to_dict(),
        "seconds": round(result.seconds, 3),
        "strategy": result.strategy,
        "model": model,
    }
    if result.meta.get("stopped"):
        out["stop_reason"] = result.meta.get("stop_reason")
    if show:
        out["candidates"] = [c.to_dict() for c in result.candidates]
    return out


def _print_text(result: Result, *, show: bool) -> None:
    if show:
        for i, c in enumerate(result.candidates):
            print(f"--- candidate {i + 1} (answer: {c.answer}, score: {c.score}) ---")
            print(c.text.strip())
        print("---")
    print(f"answer: {result.answer}")
    if result.meta.get("stopped"):
        print(f"stopped early: {result.meta.get('stop_reason')}")
    if result.votes:
        total = sum(result.votes.values()) or 1.0
        print("votes:")
        for a, v in sorted(result.votes.items(), key=lambda kv: -kv[1]):
            print(f"  {a:>16}  {v:g}  ({100 * v / total:.0f}%)")
    u = result.usage
    print(
        f"tokens: {u.total_tokens} ({u.prompt_tokens} prompt prefilled, {u.cached_tokens} "
        f"shared, {u.completion_tokens} generated) in {u.calls} call(s); "
        f"{result.seconds:.1f} s"
    )


COMMANDS = {"run": cmd_run}
