"""``ponder verifier``: train a probe verifier on eval runs, and measure any verifier.

The training code loads only when this command runs: the module imports it inside the
commands, never at the top, as ``ponder.cli`` imports this module for the parser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.cli import args as cli_args
from ponder.cli.args import add_engine_args, add_jsonl_args, jsonl_fields
from ponder.core.errors import ConfigError

if TYPE_CHECKING:
    from ponder.analysis.probe_stores import EvalStores
    from ponder.analysis.probe_train import LabelSpec, Rollout, TrainReport
    from ponder.core.task import Task
    from ponder.core.types import Usage

__all__ = ["COMMANDS", "add_parser", "run_verifier"]

TRAIN_EPILOG = """what it does:
  Every candidate stored by `ponder eval` in STORE... is a rollout, labelled by the
  task's grader (no extractable answer = wrong). Each rollout gives up to
  --max-prefixes prefixes (steps 1..k, the whole solution always among them), each
  labelled by --labels:
    outcome  every prefix gets the rollout's label (no sampling)
    mc:K     Math-Shepherd hard estimate: 1 if any of K continuations sampled from the
             prefix reaches the reference answer (prefixes of correct rollouts are 1
             without sampling; the whole solution keeps its grade)
  The model embeds every prefix (its hidden state at the prefix's last token); problems
  are split into training and held out (--heldout, never one problem on both sides);
  L2-regularised logistic regression is fitted on the training side and its AUC is
  measured on the held-out side. The probe file records the held-out problem ids for
  `ponder verifier eval --heldout-of`.
  --folds K cross-fits instead: problems are dealt into K folds, each fold is scored by
  a model fitted on the others (AUC over every rollout), and the probe keeps the fold
  models, scoring each training problem with the one that never saw it. So the same
  eval store can train the probe and then be ranked or searched with it.

example (rollouts from the train split, so the test problems stay unseen):
  ponder eval --task gsm8k --data train.jsonl --limit 100 --strategy majority --n 4 \\
      --out runs/train-maj4.db
  ponder verifier train runs/train-maj4.db --task gsm8k --out runs/probe.npz
  ponder eval --task gsm8k --data test.jsonl --strategy best_of_n --scorer probe:runs/probe.npz \\
      --out runs/gsm8k-probe.db
"""

EVAL_EPILOG = """example: the probe against the judge on rollouts the probe never saw
  ponder verifier eval runs/train-maj4.db --verifier probe:runs/probe.npz \\
      --heldout-of runs/probe.npz
  ponder verifier eval runs/train-maj4.db --verifier judge --heldout-of runs/probe.npz

AUC is the verifier's score of each rollout against its correctness, pooled over
problems; best-of-n is the fraction of problems whose top-scored rollout is correct.
Scorers that read a sample's own logprobs (logprob...) cannot be measured on stored
rollouts, which keep no logprobs.
"""


def _add_rollout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("stores", nargs="+", metavar="STORE", help="RUN.db files from ponder eval")
    g = p.add_argument_group("task (how rollouts are prompted and graded)")
    g.add_argument(
        "--task",
        help="gsm8k, math500, aime24, jsonl or demo (default: the task the stores ran)",
    )
    g.add_argument(
        "--data",
        help="task data: a .jsonl file or a folder with test.jsonl (default: the questions "
        "and references stored in the runs)",
    )
    g.add_argument("--limit", type=int, help="first K problems of each store only")
    add_jsonl_args(g)


def _add_engine(p: argparse.ArgumentParser, model_help: str) -> None:
    add_engine_args(p)
    # the right default model is the one that wrote the rollouts, known only from the store
    p.set_defaults(model=None)
    for action in p._actions:
        if "--model" in action.option_strings:
            action.help = model_help


def add_parser(subparsers: Any) -> None:
    """Add ``ponder verifier train`` and ``ponder verifier eval`` to ``subparsers``."""
    ver: argparse.ArgumentParser = subparsers.add_parser(
        "verifier", help="train a probe verifier; measure verifiers"
    )
    vsub = ver.add_subparsers(dest="verifier_command", required=True, metavar="ACTION")
    _add_train_parser(vsub)
    _add_eval_parser(vsub)


def _add_train_parser(vsub: Any) -> None:
    train = vsub.add_parser(
        "train",
        help="fit a probe verifier on the model's hidden states of stored rollouts",
        description="Train a probe verifier (logistic regression on the model's hidden "
        "states) on the graded rollouts of ponder eval runs, and report its held-out AUC.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_rollout_args(train)
    _add_probe_args(train.add_argument_group("probe"))
    _add_engine(
        train,
        "bundled model name or .gguf path whose hidden states the probe reads (default: "
        "the model that wrote the stores' rollouts); it needs embeddings, so no server",
    )


def _add_probe_args(g: argparse._ArgumentGroup) -> None:
    from ponder.verifiers.steps import AGGREGATIONS, SEGMENTATIONS

    g.add_argument("--out", required=True, help="the probe file to write (.npz)")
    g.add_argument(
        "--labels", default="outcome", help="step labels: outcome or mc:K (default: outcome)"
    )
    g.add_argument(
        "--heldout",
        type=float,
        help="fraction of problems held out for the AUC, never trained on (default 0.3; "
        "0 with --folds)",
    )
    g.add_argument(
        "--folds",
        type=int,
        default=0,
        help="cross-fit with K folds by problem instead of holding problems out",
    )
    g.add_argument("--seed", type=int, default=0, help="split and sampling seed (default 0)")
    g.add_argument(
        "--max-prefixes",
        type=int,
        default=8,
        help="prefixes per rollout, spread evenly, the whole solution always included (default 8)",
    )
    g.add_argument(
        "--l2",
        default="auto",
        help="L2 strength on standardised features, or auto: chosen by 3-fold "
        "cross-validation over training problems (default auto)",
    )
    g.add_argument(
        "--segmentation",
        default="blank",
        choices=SEGMENTATIONS,
        help="how a solution is cut into steps (default blank: at blank lines)",
    )
    g.add_argument(
        "--aggregation",
        default="last",
        choices=AGGREGATIONS,
        help="how step scores become a solution's score, for the held-out outcome AUC "
        "and as the probe's default (default last)",
    )
    g.add_argument(
        "--mc-temperature",
        type=float,
        default=0.7,
        help="mc:K: temperature of the continuations (default 0.7)",
    )
    g.add_argument(
        "--max-tokens", type=int, default=512, help="mc:K: tokens per continuation (default 512)"
    )
    g.add_argument(
        "--batch-size", type=int, default=16, help="prefixes per embedding call (default 16)"
    )
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_eval_parser(vsub: Any) -> None:
    from ponder.verifiers.steps import AGGREGATIONS, SEGMENTATIONS

    ev = vsub.add_parser(
        "eval",
        help="AUC and best-of-n of any verifier on stored rollouts, with its cost",
        description="Score stored rollouts with a verifier and measure how well its scores "
        "separate right from wrong solutions.",
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_rollout_args(ev)
    g = ev.add_argument_group("verifier")
    g.add_argument(
        "--verifier",
        required=True,
        metavar="SPEC",
        help="judge, judge:step, probe:PATH, hfprm:MODEL (options as in --scorer: "
        "SPEC,agg=min,seg=lines)",
    )
    g.add_argument(
        "--heldout-of",
        metavar="PROBE",
        help="only the problems this probe file held out of its training",
    )
    g.add_argument(
        "--segmentation",
        choices=SEGMENTATIONS,
        help="process verifiers: how a solution is cut into steps (default: the "
        "--heldout-of probe's, else blank)",
    )
    g.add_argument(
        "--aggregation",
        default="last",
        choices=AGGREGATIONS,
        help="process verifiers: how step scores become one score (default last)",
    )
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_engine(
        ev,
        "the verifier's model: bundled name, .gguf path or a server's model name "
        "(default: the model that wrote the stores' rollouts)",
    )


# -- shared ------------------------------------------------------------------------------


def _task_and_rollouts(args: argparse.Namespace) -> tuple[Task, list[Rollout], EvalStores]:
    """The task (named, or the stores' own), the graded rollouts, and the stores."""
    from ponder.analysis.probe_stores import EvalStores
    from ponder.tasks import make_task

    stores = EvalStores.read(args.stores)
    name = stores.task_name() if args.task is None else args.task
    task = make_task(name, data=args.data, **jsonl_fields(name, args))
    rollouts = stores.rollouts(task, from_data=args.data is not None, limit=args.limit)
    return task, rollouts, stores


def _default_model(args: argparse.Namespace, stores: EvalStores) -> None:
    if args.model is None:
        args.model = stores.writer_model()


def _cost(usage: Usage, seconds: float) -> str:
    return (
        f"{usage.total_tokens} tokens ({usage.prompt_tokens} prefilled, {usage.cached_tokens} "
        f"cached, {usage.completion_tokens} generated) in {usage.calls} call(s), {seconds:.1f} s"
    )


def _auc(x: float) -> str:
    return "undefined (one class only)" if x != x else f"{x:.3f}"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


# -- commands ----------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    from ponder.analysis.probe_train import parse_labels, train_probe

    labels = parse_labels(args.labels)
    l2 = _l2(args.l2)
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; name the probe file")
    task, rollouts, stores = _task_and_rollouts(args)
    if not rollouts:
        raise ConfigError("the stores hold no graded candidates to train on")
    _default_model(args, stores)
    engine = cli_args.engine(args)

    async def go() -> TrainReport:
        try:
            return await train_probe(
                rollouts,
                task=task,
                engine=engine,
                labels=labels,
                segmentation=args.segmentation,
                aggregation=args.aggregation,
                heldout=(0.0 if args.folds else 0.3) if args.heldout is None else args.heldout,
                folds=args.folds,
                seed=args.seed,
                max_prefixes=args.max_prefixes,
                l2=l2,  # type: ignore[arg-type]  # "auto" or a float, checked above
                mc_temperature=args.mc_temperature,
                max_tokens=args.max_tokens,
                batch_size=args.batch_size,
                progress=not args.no_progress,
                meta={"stores": [str(s) for s in args.stores]},
            )
        finally:
            await engine.aclose()

    report = asyncio.run(go())
    path = report.probe.save(out)
    if args.json:
        print(json.dumps({"probe": str(path), **report.to_dict()}, indent=2))
    else:
        _print_train_report(args, report, rollouts, labels, engine.name, path)
    return 0


def _l2(text: str) -> float | str:
    """``--l2``: "auto", or a positive number."""
    if text == "auto":
        return text
    try:
        l2 = float(text)
    except ValueError:
        raise ConfigError(f"--l2 takes a positive number or auto, got {text!r}") from None
    if not l2 > 0:
        raise ConfigError(f"--l2 must be positive, got {text}")
    return l2


def _print_train_report(
    args: argparse.Namespace,
    report: TrainReport,
    rollouts: Sequence[Rollout],
    labels: LabelSpec,
    model: str,
    path: Path,
) -> None:
    n_problems = len({r.problem.id for r in rollouts})
    correct = sum(r.correct for r in rollouts)
    for note in report.notes:
        print(f"note: {note}")
    print(
        f"rollouts: {len(rollouts)} of {n_problems} problems from {len(args.stores)} "
        f"store(s), {correct} correct ({_pct(correct, len(rollouts))})"
    )
    print(
        f"train: {report.train_problems} problems, {report.train_rollouts} rollouts, "
        f"{report.train_examples} prefixes ({_pct(report.train_positive, report.train_examples)}"
        " labelled right)"
    )
    side = f"cross-fitted ({args.folds} folds)" if args.folds else "held out"
    print(
        f"{side}: {report.heldout_problems} problems, {report.heldout_rollouts} rollouts "
        f"({report.heldout_rollouts_correct} correct), {report.heldout_examples} prefixes "
        f"({_pct(report.heldout_positive, report.heldout_examples)} labelled right)"
    )
    print(f"labels ({labels}): {_cost(report.label_usage, report.label_seconds)}")
    print(f"features ({model}): {_cost(report.feature_usage, report.feature_seconds)}")
    how = "chosen by cross-validation" if args.l2 == "auto" else "given"
    print(f"l2: {report.l2:g} ({how}); fit in {report.fit_seconds:.1f} s")
    print(
        f"AUC: train {_auc(report.train_auc)}; {side}: step {_auc(report.heldout_step_auc)}, "
        f"outcome {_auc(report.heldout_outcome_auc)} (aggregation {args.aggregation})"
    )
    print(f"wrote {path}")


def _eval(args: argparse.Namespace) -> int:
    from ponder.analysis.probe_stores import heldout_missing, load_heldout_probe
    from ponder.analysis.probe_train import VerifierEval, evaluate_verifier

    ids: tuple[str, ...] | None = None
    segmentation = args.segmentation
    if args.heldout_of is not None:
        holder = load_heldout_probe(args.heldout_of)
        ids = holder.heldout_ids
        segmentation = segmentation or holder.segmentation
    task, rollouts, stores = _task_and_rollouts(args)
    missing = 0 if ids is None else heldout_missing(ids, rollouts, args.heldout_of)
    _default_model(args, stores)
    engine = cli_args.engine(args)

    async def go() -> VerifierEval:
        try:
            return await evaluate_verifier(
                args.verifier,
                rollouts,
                task=task,
                engine=engine,
                segmentation=segmentation or "blank",
                aggregation=args.aggregation,
                problem_ids=ids,
                progress=not args.no_progress,
            )
        finally:
            await engine.aclose()

    result = asyncio.run(go())
    if args.json:
        out = {**result.to_dict(), "model": engine.name, "heldout_of": args.heldout_of}
        print(json.dumps(out, indent=2))
        return 0
    scope = f", held out by {args.heldout_of}" if args.heldout_of else ""
    if missing:
        scope += f" ({missing} of its {len(ids or ())} held-out problems are not in the stores)"
    print(
        f"verifier {result.spec} ({engine.name}) on {result.rollouts} rollouts of "
        f"{result.problems} problems{scope}; {result.positive} correct "
        f"({_pct(result.positive, result.rollouts)})"
    )
    print(
        f"AUC {_auc(result.auc)}; best-of-n accuracy {result.best_of_n:.3f} "
        f"(oracle {result.oracle:.3f})"
    )
    print(f"cost: {_cost(result.usage, result.seconds)}")
    return 0


def run_verifier(args: argparse.Namespace) -> int:
    """Run ``ponder verifier ACTION`` from parsed arguments; returns the exit status."""
    if args.verifier_command == "train":
        return _train(args)
    if args.verifier_command == "eval":
        return _eval(args)
    raise ConfigError(f"unknown verifier action {args.verifier_command!r}")


COMMANDS = {"verifier": run_verifier}
