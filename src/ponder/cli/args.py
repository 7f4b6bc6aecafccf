"""The argument groups and helpers the subcommands share: the engine, the task's data
and jsonl fields, the strategy and its ``-o`` options, the executor, and code execution."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ponder.runs.settings import DEFAULT_MAX_TOKENS


def add_engine_args(p: argparse.ArgumentParser, *, key_flag: str = "--api-key") -> None:
    """The "engine" group: which model, where it runs, and the engine's knobs (read back
    by :func:`engine`); ``key_flag`` names the API key's flag."""
    from ponder.engines.models import DEFAULT_MODEL

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
        "not a bundled name or a .gguf file); several, separated by commas, form a pool "
        "(least-loaded routing, health checks, failover)",
    )
    g.add_argument(key_flag, dest="api_key", help="server API key (default: $OPENAI_API_KEY)")
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


# tasks whose data has splits: ``--split`` names the one a file holds
SPLIT_TASKS = ("gsm8k", "math500", "aime24", "jsonl")


def add_jsonl_args(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--split``, the jsonl task's fields and the free-form answer options (read back by
    :func:`jsonl_fields`)."""
    p.add_argument(
        "--split",
        help=f"the data's split ({', '.join(SPLIT_TASKS)}): part of every problem id and "
        "of the run's record; default: what the file's name says (train.jsonl), else its "
        "records' 'split' field; the hub's test split without --data",
    )
    p.add_argument("--question-field", default="question", help="jsonl task: question field")
    p.add_argument("--answer-field", default="answer", help="jsonl task: answer field")
    p.add_argument("--id-field", help="jsonl task: id field (default: line number)")
    add_answer_type_arg(p)
    p.add_argument(
        "--grader",
        choices=["exact", "judge"],
        help="free-form answers: exact (equal after normalising case, punctuation, "
        "articles; default) or judge (the eval's model asked whether the answer means "
        "the same as the reference; its tokens are recorded apart from the strategy's)",
    )
    p.add_argument(
        "--answer-from",
        choices=["line", "text"],
        help="free-form answers: line (after the last 'Answer:', default) or text (the "
        "whole completion, with a prompt that asks for the answer alone)",
    )


def add_answer_type_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--answer-type",
        choices=["math", "free"],
        help="jsonl task, run: math (final answer in \\boxed{}, graded as math; default) "
        "or free (free-form text on an 'Answer:' line; see the docs' Free-form answers guide)",
    )


def jsonl_fields(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The task options given: the split, and the jsonl task's fields."""
    split = getattr(args, "split", None)
    if split is not None and task not in SPLIT_TASKS:
        from ponder.core.errors import ConfigError

        raise ConfigError(f"--split is an option of the tasks {', '.join(SPLIT_TASKS)}")
    if task != "jsonl":
        free = (args.answer_type, args.grader, args.answer_from)
        if any(v is not None for v in free):
            from ponder.core.errors import ConfigError

            raise ConfigError(
                "--answer-type, --grader and --answer-from are options of --task jsonl"
            )
        return {} if split is None else {"split": split}
    return {
        "split": split,
        "question_field": args.question_field,
        "answer_field": args.answer_field,
        "id_field": args.id_field,
        "answer_type": args.answer_type,
        "grader": args.grader,
        "answer_from": args.answer_from,
    }


class StrategyAction(argparse.Action):
    """``--strategy NAME`` or ``--strategy NAME:ARG`` (``optimal:POLICY.json``): sets
    ``strategy`` to the name and ``strategy_arg`` to the argument (None without one)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        from ponder.strategies import strategy_names
        from ponder.strategies.options import STRATEGY_ARGUMENTS

        name, sep, arg = str(values).partition(":")
        if name not in strategy_names():
            raise argparse.ArgumentError(
                self, f"invalid choice: {name!r} (choose from {', '.join(strategy_names())})"
            )
        if sep and name not in STRATEGY_ARGUMENTS:
            raise argparse.ArgumentError(
                self,
                f"strategy {name!r} takes no ':' argument (only "
                f"{', '.join(f'{k}:{v.upper()}' for k, v in STRATEGY_ARGUMENTS.items())})",
            )
        if sep and not arg:
            raise argparse.ArgumentError(self, f"{name}: needs a value after the colon")
        setattr(namespace, self.dest, name)
        namespace.strategy_arg = arg if sep else None


def add_strategy_args(p: argparse.ArgumentParser) -> None:
    """The "strategy" group: the strategy, its budget, sampling and ``-o`` fields (read back
    by :func:`strategy_options` and :func:`token_budget`)."""
    from ponder.strategies import strategy_names

    g = p.add_argument_group("strategy")
    g.add_argument(
        "--strategy",
        default="majority",
        action=StrategyAction,
        metavar="NAME",
        help=f"how to spend compute: {', '.join(strategy_names())} (default: majority); "
        "optimal:POLICY.json runs a policy from `ponder optimize`",
    )
    p.set_defaults(strategy_arg=None)
    g.add_argument(
        "--budget",
        type=float,
        metavar="TOKENS",
        help="the most tokens one problem may spend, prompt and generated, every call "
        "counted (a hard limit: a call that could pass it is not made, and the strategy "
        "stops with its best answer so far); optimal: instead the mean tokens per problem "
        "its policy plans for (the policy's largest budget <= TOKENS)",
    )
    g.add_argument(
        "--n",
        type=int,
        help="samples per problem (default 8); adaptive strategies: the most they draw",
    )
    g.add_argument(
        "--temperature",
        type=float,
        help="sampling temperature (single, probe_exit, pal at n = 1: 0; others: 0.7)",
    )
    g.add_argument("--top-p", type=float, help="nucleus sampling (default 0.95 when sampling)")
    g.add_argument(
        "--scorer",
        help="best_of_n / weighted_majority / weighted_stop / revise: logprob, "
        "logprob:lowest_group[:WINDOW], judge, judge:step, probe:PATH, hfprm:MODEL, "
        "combined:PATH (a combined verifier over the samples' token confidences), "
        "hidden:PATH (a hidden-state probe, read while sampling; best_of_n, "
        "weighted_majority and weighted_stop, embedded engine), "
        "tests:visible (code: share of the prompt's examples passed in the sandbox) "
        "(default: logprob)",
    )
    g.add_argument(
        "--verifier",
        help="search strategies: the process verifier, judge:step, probe:PATH, "
        "hfprm:MODEL, combined:PATH (from the steps' own logprobs) or hidden:PATH (a "
        "hidden-state probe, from the steps' own hidden states; embedded engine), with "
        ",agg=last|min|prod|mean (default: judge:step)",
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
        "--max-tokens",
        type=int,
        help=f"tokens per sample (default {DEFAULT_MAX_TOKENS}; with --replay the bank's)",
    )
    g.add_argument("--seed", type=int, default=0, help="base sampling seed (default 0)")


def add_exec_arg(p: argparse.ArgumentParser) -> None:
    """``--allow-unisolated-exec``, which ``main`` turns into the sandbox's opt-in."""
    p.add_argument(
        "--allow-unisolated-exec",
        action="store_true",
        help="run model-written code (pal, tests:visible, behaviour_majority, humaneval "
        "grading) with your own privileges where nothing isolates it better (no "
        "bubblewrap, and ponder cannot run it as nobody); without this flag (or "
        "PONDER_ALLOW_UNISOLATED_EXEC=1) ponder refuses there",
    )


def strategy_options(args: argparse.Namespace) -> dict[str, Any]:
    """The strategy's options from its flags and ``-o`` items (None: the strategy's default)."""
    from ponder.strategies.options import build_options

    common: dict[str, Any] = {
        "n": args.n,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "scorer": args.scorer,
        "verifier": args.verifier,
        "width": args.width,
        "select": args.select,
        # optimal plans a mean over problems; for the rest it is a limit (token_budget)
        "budget": args.budget if args.strategy == "optimal" else None,
    }
    return build_options(args.strategy, common, argument=args.strategy_arg, items=args.option)


def token_budget(args: argparse.Namespace) -> int | None:
    """``--budget`` as the hard limit on one problem's tokens (None: no limit, or the
    optimal strategy, for which it is the policy's mean)."""
    from ponder.core.errors import ConfigError

    if args.budget is None or args.strategy == "optimal":
        return None
    if args.budget < 1 or not float(args.budget).is_integer():
        raise ConfigError(f"--budget must be a whole number of tokens >= 1, got {args.budget:g}")
    return int(args.budget)


def engine(args: argparse.Namespace) -> Any:
    """The engine the "engine" group's flags name; it logs to stderr."""
    from ponder.engines.registry import make_engine

    return make_engine(
        args.model,
        base_url=args.base_url,
        api_key=args.api_key,
        log=lambda m: print(m, file=sys.stderr),
        n_parallel=args.n_parallel,
        n_ctx=args.n_ctx,
        n_threads=getattr(args, "n_threads", None),
        max_concurrency=args.max_concurrency,
        prefix_reuse=False if args.no_prefix_reuse else None,
        chat_template=args.chat_template,
    )


def add_executor_args(p: argparse.ArgumentParser, what: str) -> None:
    """The "executor" group: run ``what`` here or on Ray actors, and what each reserves."""
    g = p.add_argument_group("executor (where the work runs)")
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help=f"local: this process (default); ray: {what} go to Ray actors, each holding "
        "its own engine or model (pip install 'ponder[ray]')",
    )
    g.add_argument(
        "--address",
        help="with --executor ray: a running cluster to join ('auto', or "
        "ray://HOST:10001); default: start a local Ray for this run",
    )
    g.add_argument("--actors", type=int, default=1, help="Ray actors (default 1)")
    g.add_argument(
        "--actor-cpus", type=float, default=1.0, help="CPUs each actor reserves (default 1)"
    )
    g.add_argument(
        "--actor-gpus", type=float, default=0.0, help="GPUs each actor reserves (default 0)"
    )
    g.add_argument(
        "--actor-memory-gb", type=float, help="memory each actor reserves, in GB (default: none)"
    )
