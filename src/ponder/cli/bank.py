"""``ponder bank features``: token-confidence features for a bank's samples."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.cli import args as cli_args
from ponder.cli.args import add_engine_args
from ponder.verifiers.features import DEFAULT_TOP_K

if TYPE_CHECKING:
    from ponder.analysis.hybrid import Cell

__all__ = ["COMMANDS", "add_parser", "cmd_bank"]


def add_parser(subparsers: Any) -> None:
    bank = subparsers.add_parser("bank", help="work on a bank of samples (a sampling run's store)")
    actions = bank.add_subparsers(dest="bank_command", required=True, metavar="ACTION")
    feat = actions.add_parser(
        "features",
        help="give each sample token-confidence features (DeepConf's group, tail and "
        "bottom-10%% confidences, self-certainty, mean logprob) by prefilling it on the "
        "bank's model; resumable",
    )
    feat.add_argument("bank", metavar="BANK.db")
    feat.add_argument(
        "--data",
        help="the bank's task data (default: the file the bank recorded reading, when it "
        "is still there, else the task's default)",
    )
    feat.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"alternatives per token the features read (default {DEFAULT_TOP_K})",
    )
    feat.add_argument(
        "--batch",
        type=int,
        default=4,
        help="samples prefilled together, in shared decode calls (the embedded engine's "
        "--n-parallel; default 4); on a CPU the pass is compute-bound and gains little "
        "from more (bench/bank_features.py)",
    )
    feat.add_argument(
        "--hidden",
        action="store_true",
        help="also store each sample's final-layer hidden states (at its last scored "
        "token and the mean over its tokens), read in the same prefill at no extra "
        "token and kept as a fixed random projection in float16 (table 'hidden', "
        "carried by export); samples with features but no hidden states are prefilled "
        "again, their features kept",
    )
    feat.add_argument(
        "--hidden-dim",
        type=int,
        default=128,
        help="numbers each hidden state is projected to (default 128; a bank keeps one)",
    )
    feat.add_argument("--limit", type=int, help="the bank's first K problems only")
    feat.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_args(feat)
    _add_select_parser(actions)
    _add_stop_parser(actions)
    _add_hybrid_parser(actions)
    score = actions.add_parser(
        "score",
        help="write a bank with features as the weighted_majority run that scores its "
        "samples with a combined verifier (--scorer combined:PATH) or a hidden-state probe "
        "(--scorer hidden:PATH), for ponder optimize",
    )
    score.add_argument("bank", metavar="BANK.db", help="a sampling run's bank with features")
    score.add_argument(
        "--verifier",
        required=True,
        metavar="PATH",
        help="a combined verifier or a hidden-state probe (JSON; the probe needs the "
        "bank's hidden states)",
    )
    score.add_argument("--out", required=True, metavar="SCORED.db", help="the new store")
    score.add_argument(
        "--cross-fit",
        action="store_true",
        help="score each problem by a verifier fitted on the bank's other problems (5 "
        "folds), for a bank the verifier was fitted on",
    )


def _add_hybrid_parser(actions: Any) -> None:
    hyb = actions.add_parser(
        "hybrid",
        help="replay a vote over chain-of-thought and program (PAL) samples of the same "
        "problems, each mix against CoT majority at matched tokens",
    )
    hyb.add_argument("cot", metavar="COT.db", help="a majority run's bank")
    hyb.add_argument("pal", metavar="PAL.db", help="a pal run's bank of the same problems")
    hyb.add_argument(
        "--cells",
        nargs="+",
        metavar="K,M[,W]",
        help="K CoT and M PAL samples per vote; a third number W weighs each CoT sample "
        "by its score in COT.db and each program by W (default 0,1 0,4 1,1 2,2 4,4 2,4 "
        "8,4; with --train: every K and M the train banks allow)",
    )
    hyb.add_argument(
        "--train",
        nargs=2,
        metavar=("COT.db", "PAL.db"),
        help="banks of other problems to choose on: for each n of --at, the cell most "
        "accurate there within CoT majority-n's tokens, then measured on COT.db and "
        "PAL.db",
    )
    hyb.add_argument(
        "--at",
        nargs="+",
        type=int,
        default=[4, 8, 16],
        metavar="N",
        help="with --train: the CoT majority sizes to choose a cell for (default 4 8 16)",
    )
    hyb.add_argument(
        "--pal-weights",
        nargs="+",
        type=float,
        default=[],
        metavar="W",
        help="with --train and no --cells: also every weighted cell with these program "
        "weights (the CoT banks must be scored)",
    )
    hyb.add_argument(
        "--program",
        metavar="PAL1.db",
        help="a greedy pal run (one program a problem): also measure the execution "
        "cross-check, a CoT sample agreeing with the program, as a signal (AUC)",
    )
    _add_replay_args(hyb)
    hyb.add_argument("--json", metavar="PATH", help="also write the rows as JSON")


def _add_replay_args(parser: Any) -> None:
    """The orders, resamples and seed every bank replay takes."""
    parser.add_argument(
        "--orderings",
        type=int,
        default=200,
        help="random orders of each problem's samples averaged over (default 200)",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=2000, help="paired bootstrap resamples (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=0)


def _check_replay_args(args: argparse.Namespace) -> None:
    from ponder.core.errors import ConfigError

    if args.orderings < 1 or args.bootstrap < 1:
        raise ConfigError("--orderings and --bootstrap must be >= 1")


def _add_stop_parser(actions: Any) -> None:
    stop = actions.add_parser(
        "stop",
        help="replay adaptive stopping by vote share or vote margin (unweighted, or weighted "
        "by a feature, the combined verifier or a hidden-state probe): settings chosen on a "
        "train bank, then "
        "measured on BANK against majority over all its samples",
    )
    stop.add_argument("bank", metavar="BANK.db", help="a bank whose samples have features")
    stop.add_argument(
        "--train",
        nargs="+",
        required=True,
        metavar="TRAIN.db",
        help="banks of other problems: the rule is chosen on the first, the combined "
        "verifier fitted on all",
    )
    stop.add_argument(
        "--signals",
        nargs="+",
        default=["majority", "combined", "mean_logprob", "lowest_group_32", "self_certainty"],
        help="vote weights to try ('majority': unweighted; default: majority combined "
        "mean_logprob lowest_group_32 self_certainty)",
    )
    stop.add_argument(
        "--taus",
        nargs="+",
        type=float,
        default=[0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        help="vote shares to try (default 0.5 ... 1.0 by 0.1)",
    )
    stop.add_argument(
        "--min-samples",
        nargs="+",
        type=int,
        default=[1, 2, 3],
        help="fewest samples before a stop (default 1 2 3)",
    )
    stop.add_argument(
        "--give-up",
        nargs="+",
        type=float,
        default=[0.0],
        metavar="SHARE",
        help="also stop, from --give-up-after samples on, when the leader holds less than "
        "SHARE of the votes (0: never; default 0)",
    )
    stop.add_argument(
        "--give-up-after",
        type=int,
        default=4,
        metavar="K",
        help="the fewest samples before a rule may give up (default 4)",
    )
    stop.add_argument(
        "--margins",
        nargs="+",
        type=float,
        default=[],
        metavar="M",
        help="also try margin rules: stop once the leading answer's (weighted) votes exceed "
        "the runner-up's by M (default: none)",
    )
    stop.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="accuracy below majority's the train choice may lose (default 0)",
    )
    _add_replay_args(stop)
    stop.add_argument("--json", metavar="PATH", help="also write the result as JSON")


def _add_select_parser(actions: Any) -> None:
    sel = actions.add_parser(
        "select",
        help="replay selection rules (weighted votes, best-of-n and DeepConf filters by "
        "each feature and by a combined verifier) on a bank with features, each against "
        "majority at the same n, with paired bootstrap intervals",
    )
    sel.add_argument("bank", metavar="BANK.db", help="a bank whose samples have features")
    sel.add_argument(
        "--train",
        nargs="+",
        metavar="TRAIN.db",
        default=[],
        help="banks (of other problems) to fit the combined verifier on; without them "
        "it is cross-fitted on BANK (5 folds by problem)",
    )
    sel.add_argument(
        "--rules",
        nargs="+",
        metavar="RULE",
        help="majority, weighted[S], weighted[S,K], best_of_n[S] or filter[S,Q] with S a "
        "feature, 'combined', 'probe' or 'joint', K the power the weights are raised to "
        "and Q the share kept (default: ponder.analysis.selection's DEFAULT_RULES, a set "
        "of each)",
    )
    sel.add_argument(
        "--n",
        nargs="+",
        type=int,
        help="samples per problem (default: those of 4 8 16 the bank has, else all of its)",
    )
    _add_replay_args(sel)
    sel.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    sel.add_argument(
        "--plot",
        metavar="PNG",
        help="draw accuracy against tokens at every n for --plot-rules and the rule "
        "chosen on train",
    )
    sel.add_argument(
        "--plot-rules",
        nargs="+",
        default=["majority", "weighted[combined]"],
        metavar="RULE",
        help="the rules --plot draws (default: majority weighted[combined])",
    )
    sel.add_argument(
        "--save-verifier",
        metavar="PATH",
        help="write the combined verifier fitted on --train (for --scorer combined:PATH)",
    )
    sel.add_argument(
        "--save-probe",
        metavar="PATH",
        help="write the hidden-state probe fitted on --train (for --scorer hidden:PATH; "
        "the banks need hidden states)",
    )
    sel.add_argument(
        "--probe-signal",
        choices=["joint", "probe"],
        default="joint",
        help="the probe --save-probe writes: over the hidden states and the features "
        "(joint, default) or the hidden states alone",
    )


def cmd_bank(args: argparse.Namespace) -> int:
    if args.bank_command == "select":
        return _cmd_select(args)
    if args.bank_command == "stop":
        return _cmd_stop(args)
    if args.bank_command == "hybrid":
        return _cmd_hybrid(args)
    if args.bank_command == "score":
        from ponder.analysis.scored_bank import score_bank

        written = score_bank(args.bank, args.verifier, args.out, cross_fit=args.cross_fit)
        print(f"{written} records scored by {args.verifier} written to {args.out}")
        return 0
    return _cmd_features(args)


def _cmd_select(args: argparse.Namespace) -> int:
    import json

    from ponder.analysis.selection import DEFAULT_RULES, load_bank, markdown, parse_rule, select
    from ponder.core.errors import ConfigError

    for flag, given in (("--save-verifier", args.save_verifier), ("--save-probe", args.save_probe)):
        if given and not args.train:
            raise ConfigError(f"{flag} needs --train: a cross-fitted verifier is many models")
    _check_replay_args(args)
    try:
        rules = [parse_rule(r) for r in (args.rules or DEFAULT_RULES)]
        curve_rules = [parse_rule(r) for r in args.plot_rules] if args.plot else []
        bank = load_bank(args.bank)
        train = [load_bank(t) for t in args.train]
        n_all = bank.shape[1]
        ns = args.n or [n for n in (4, 8, 16) if n <= n_all] or [n_all]
        result = select(
            bank,
            rules,
            ns,
            train=train,
            orderings=args.orderings,
            bootstrap=args.bootstrap,
            seed=args.seed,
            curve_rules=curve_rules,
            drop_unavailable=args.rules is None,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    print(markdown(result))
    if args.plot:
        from ponder.analysis.plot import plot_selection

        title = f"Selection rules on {Path(args.bank).stem} ({result.problems} problems)"
        Path(args.plot).write_bytes(plot_selection(result.curves, title))
        print(f"figure written to {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if args.save_verifier:
        assert result.verifier is not None
        result.verifier.save(args.save_verifier)
        print(f"combined verifier written to {args.save_verifier}")
    if args.save_probe:
        from ponder.analysis.selection import fit_probe_on_banks

        try:
            probe = fit_probe_on_banks(train, args.probe_signal, seed=args.seed)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        probe.save(args.save_probe)
        print(f"hidden-state probe ({args.probe_signal}) written to {args.save_probe}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    import json

    from ponder.analysis.stop_replay import stop_report
    from ponder.core.errors import ConfigError

    _check_replay_args(args)
    try:
        text, data = stop_report(
            args.bank,
            args.train,
            signals=args.signals,
            taus=args.taus,
            min_samples=args.min_samples,
            give_ups=args.give_up,
            margins=args.margins,
            give_up_after=args.give_up_after,
            tolerance=args.tolerance,
            orderings=args.orderings,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


_DEFAULT_CELLS = ["0,1", "0,4", "1,1", "2,2", "4,4", "2,4", "8,4"]


def _parse_cells(specs: list[str]) -> list[Cell]:
    from ponder.analysis.hybrid import Cell
    from ponder.core.errors import ConfigError

    cells: list[Cell] = []
    for spec in specs:
        parts = spec.split(",")
        try:
            if len(parts) == 2:
                cells.append(Cell(int(parts[0]), int(parts[1])))
            elif len(parts) == 3:
                cells.append(Cell(int(parts[0]), int(parts[1]), float(parts[2])))
            else:
                raise ValueError(spec)
        except ValueError:
            raise ConfigError(
                f"--cells takes K,M or K,M,W (integers, then a weight), got {spec!r}"
            ) from None
    return cells


def _cmd_hybrid(args: argparse.Namespace) -> int:
    import json

    from ponder.analysis.hybrid import (
        Cell,
        choose,
        chosen_markdown,
        cross_check,
        grid,
        hybrid_table,
        load_pair,
        markdown,
    )
    from ponder.core.errors import ConfigError

    _check_replay_args(args)
    cells = _parse_cells(args.cells) if args.cells else None
    if args.pal_weights and (args.train is None or cells is not None):
        raise ConfigError("--pal-weights builds --train's grid; give no --cells with it")
    replay = {"orderings": args.orderings, "seed": args.seed}
    chosen: dict[int, Any] = {}
    try:
        test = load_pair(args.cot, args.pal)
        if args.train:
            train = load_pair(*args.train)
            chosen = choose(train, cells or grid(train, args.pal_weights), args.at, **replay)
            cells = [Cell(r.cot, r.pal, r.pal_weight) for r in chosen.values()]
        rows = hybrid_table(
            test, cells or _parse_cells(_DEFAULT_CELLS), bootstrap=args.bootstrap, **replay
        )
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if chosen:
        print(chosen_markdown(chosen, rows, len(train.problem_ids)))
        data: dict[str, Any] = {
            "train": list(args.train),
            "chosen": [
                {"n": n, "train": pick.to_dict(), "test": row.to_dict()}
                for (n, pick), row in zip(chosen.items(), rows, strict=True)
            ],
        }
    else:
        print(markdown(rows, args.cot, args.pal))
        data = {"rows": [r.to_dict() for r in rows]}
    if args.program:
        try:
            check = cross_check(args.cot, args.program)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        data["cross_check"] = check.to_dict()
        print(
            f"\nexecution cross-check on {check.problems} problems ({check.samples} CoT "
            f"samples): AUC {check.pooled_auc:.3f} pooled, {check.within_auc:.3f} within "
            f"problems ({check.within_problems}); the program answers "
            f"{check.program_answered:.0%} and is right on {check.program_accuracy:.0%}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ponder.analysis.bank_features import compute_bank_features
    from ponder.core.errors import ConfigError
    from ponder.runs.store import RunStore
    from ponder.tasks import make_task

    if args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")
    with RunStore(args.bank, create=False) as store:
        config = store.config() or {}
        records = store.records(include_errors=False)[: args.limit]
        done = store.featured_samples()
        if args.hidden:
            done &= store.hidden_samples()
    if "task" not in config:
        raise ConfigError(f"{args.bank} holds no run (no configuration)")
    task = make_task(str(config["task"]), data=args.data or _recorded_data(config))
    args.n_parallel = args.n_parallel or args.batch
    engine = cli_args.engine(args)
    samples = [(r.problem_id, i) for r in records for i in range(len(r.candidates))]
    had = sum(1 for sample in samples if sample in done)

    async def go() -> Any:
        with tqdm(total=len(samples), initial=had, unit="sample", disable=args.no_progress) as bar:
            try:
                return await compute_bank_features(
                    args.bank,
                    engine,
                    task,
                    top_k=args.top_k,
                    limit=args.limit,
                    on_problem=bar.update,
                    hidden=args.hidden,
                    hidden_dim=args.hidden_dim,
                )
            finally:
                await engine.aclose()

    result = asyncio.run(go())
    print(result.line())
    return 0


def _recorded_data(config: dict[str, Any]) -> str | None:
    """The data file the bank recorded reading, when it is one and is still there (its
    source may be a hub name, or "problems" for a task with its own)."""
    source = config.get("data_source")
    return str(source) if source and Path(str(source)).exists() else None


COMMANDS = {"bank": cmd_bank}
