"""The probe's statistics before and after the move to scikit-learn, side by side.

    PYTHONPATH=src python bench/probe_fit_compare.py [--old-rev 6ffdb4d]

The old ``probe_train`` (hand-written Newton solver, Mann-Whitney AUC, round-robin
folds) is read from git at ``--old-rev`` and loaded beside the current one; both fit
the same synthetic data: the L2 chosen by grouped 3-fold CV, the coefficients at a
common strength, the AUCs, and the time each takes (best of ``--repeat``). A last
table fits the probe as ``train_probe`` does after embedding (``_fit_examples``, held
out and cross-fitted), on synthetic rollouts of several prefixes each.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ponder.analysis import probe_train as new
from ponder.core.types import Problem

MODULE = "src/ponder/analysis/probe_train.py"


def load_old(rev: str) -> ModuleType:
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{rev}:{MODULE}"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader("probe_train_old", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    exec(compile(source, f"{rev}:{MODULE}", "exec"), module.__dict__)
    return module


@contextmanager
def old_folds(old: ModuleType) -> Iterator[None]:
    """The current module with the old fold assignment, to compare the solvers alone."""
    current = new._group_folds
    new._group_folds = old._group_folds
    try:
        yield
    finally:
        new._group_folds = current


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def dataset(name: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(x, y, groups)``: rows grouped by problem, four rows a problem."""
    sizes = {
        "signal n400 d16": (400, 16),
        "wide n160 d512": (160, 512),
        "noise n120 d30": (120, 30),
    }
    n, d = sizes[name]
    x = rng.normal(size=(n, d))
    groups = [f"q{i // 4:03d}" for i in range(n)]
    if name.startswith("noise"):
        y = (rng.random(n) < 0.5).astype(float)
    else:
        truth = np.zeros(d)
        truth[:4] = [1.5, -1.0, 0.7, 0.3]
        y = (rng.random(n) < 1 / (1 + np.exp(-(x @ truth)))).astype(float)
    return x, y, groups


def fit_table(old: ModuleType, repeat: int) -> None:
    rng = np.random.default_rng(0)
    print("| data | side | chosen L2 | CV time s | fit time s | held-out AUC | train AUC |")
    print("|---|---|---|---|---|---|---|")
    diffs: list[str] = []
    for name in ("signal n400 d16", "wide n160 d512", "noise n120 d30"):
        x, y, groups = dataset(name, rng)
        w = rng.random(y.size) + 0.5
        cut = int(0.7 * y.size) // 4 * 4  # whole problems on each side
        xt, yt, wt, gt = x[:cut], y[:cut], w[:cut], groups[:cut]
        fits = {}
        for side, mod in (("old", old), ("new", new)):
            (l2, losses), t_cv = best_time(
                lambda mod=mod, xt=xt, yt=yt, gt=gt, wt=wt: mod.select_l2(
                    xt, yt, gt, sample_weight=wt
                ),
                repeat,
            )
            mean, std = mod._standardise(xt)
            (coef, bias), t_fit = best_time(
                lambda mod=mod, xt=xt, yt=yt, wt=wt, mean=mean, std=std: mod.fit_logistic(
                    (xt - mean) / std, yt, l2=0.01, sample_weight=wt
                ),
                repeat,
            )
            z_held = (x[cut:] - mean) / std @ coef + bias
            z_train = (xt - mean) / std @ coef + bias
            fits[side] = (coef, bias, losses)
            print(
                f"| {name} | {side} | {l2:g} | {t_cv:.4f} | {t_fit:.4f} | "
                f"{mod.roc_auc(z_held, y[cut:]):.6f} | {mod.roc_auc(z_train, yt):.6f} |"
            )
        (c0, b0, l0), (c1, b1, l1) = fits["old"], fits["new"]
        loss_gap = max(abs(l0[c] - l1[c]) for c in l0)
        with old_folds(old):  # the solvers alone: the new one on the old folds
            _, l_same = new.select_l2(xt, yt, gt, sample_weight=wt)
        same_gap = max(abs(l0[c] - l_same[c]) for c in l0)
        diffs.append(
            f"| {name} | {np.abs(c0 - c1).max():.2e} | {abs(b0 - b1):.2e} | "
            f"{np.linalg.norm(c0 - c1) / np.linalg.norm(c0):.2e} | "
            f"{loss_gap:.2e} | {same_gap:.2e} |"
        )
    print()
    print(
        "| data | max abs coef diff (L2 0.01) | bias diff | relative coef diff "
        "| max CV loss diff | same, on the old folds |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(diffs))


def auc_table(old: ModuleType, repeat: int) -> None:
    rng = np.random.default_rng(1)
    print()
    print("| AUC input | old | new | abs diff | old time s | new time s |")
    print("|---|---|---|---|---|---|")
    cases = {
        "n=1e5 continuous": (rng.normal(size=100_000), rng.random(100_000) < 0.3),
        "n=1e5, five tied values": (
            rng.integers(0, 5, size=100_000).astype(float),
            rng.random(100_000) < 0.4,
        ),
        "one class": (rng.normal(size=50), np.ones(50, bool)),
    }
    for name, (s, y) in cases.items():
        a0, t0 = best_time(lambda s=s, y=y: old.roc_auc(s, y), repeat)
        a1, t1 = best_time(lambda s=s, y=y: new.roc_auc(s, y), repeat)
        gap = abs(a0 - a1) if not (np.isnan(a0) and np.isnan(a1)) else 0.0
        print(f"| {name} | {a0:.12f} | {a1:.12f} | {gap:.1e} | {t0:.4f} | {t1:.4f} |")


def rollouts_data(
    mod: ModuleType, rng: np.random.Generator, problems: int, dim: int
) -> tuple[np.ndarray, list[Any], list[Any]]:
    """Rollouts of ``problems`` problems (6 each, 1 to 6 prefixes) with features whose
    first coordinate leans towards the outcome, as ``_fit_examples`` takes them."""
    rollouts: list[Any] = []
    examples: list[Any] = []
    rows: list[np.ndarray] = []
    for p in range(problems):
        problem = Problem(f"p{p:03d}", "q", "1")
        for _ in range(6):
            correct = bool(rng.random() < 0.45)
            rollouts.append(new.Rollout(problem, "t", "1" if correct else "2", correct))
            k = int(rng.integers(1, 7))
            for j in range(1, k + 1):
                examples.append(mod.StepExample(len(rollouts) - 1, j, j == k, float(correct)))
                row = rng.normal(size=dim)
                row[0] += (0.8 if correct else -0.8) * j / k
                rows.append(row)
    return np.array(rows), examples, rollouts


def probe_row(mod: ModuleType, problems: int, dim: int, folds: int, repeat: int) -> str:
    """Fit as ``train_probe`` does after embedding; the L2, time and held-out AUCs."""
    feats, examples, rollouts = rollouts_data(mod, np.random.default_rng(2), problems, dim)
    _, held = mod.split_by_problem((r.problem.id for r in rollouts), 0.0 if folds else 0.3)

    def fit() -> Any:
        return mod._fit_examples(
            feats, examples, rollouts, held_out=set(held), folds=folds, l2="auto", seed=0
        )

    fitted, secs = best_time(fit, repeat)
    if folds:
        scores = fitted.scores
    else:
        z = (feats - fitted.fit.mean) / fitted.fit.std @ fitted.fit.coef + fitted.fit.bias
        scores = 1 / (1 + np.exp(-z))
    step_auc = mod.roc_auc(scores[fitted.held], fitted.y[fitted.held] >= 0.5)
    _, outcome_auc, _ = mod._heldout_outcomes(examples, scores, fitted.held, rollouts, "last")
    return f"{fitted.fit.l2:g} | {secs:.4f} | {step_auc:.4f} | {outcome_auc:.4f}"


def train_table(old: ModuleType, repeat: int) -> None:
    print()
    print(
        "| probe fit (_fit_examples) | side | L2 | fit time s | held-out step AUC | outcome AUC |"
    )
    print("|---|---|---|---|---|---|")
    for problems, dim, folds in ((40, 64, 0), (40, 64, 3), (30, 896, 3)):
        name = f"{problems} problems, d={dim}, "
        name += f"{folds}-fold cross-fit" if folds else "30% held out"
        times = repeat if dim < 256 else 1
        sides = [("old", old, nullcontext()), ("new", new, nullcontext())]
        sides.append(("new, old folds", new, old_folds(old)))
        for side, mod, folds_used in sides:
            with folds_used:
                print(f"| {name} | {side} | {probe_row(mod, problems, dim, folds, times)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--old-rev", default="6ffdb4d", help="the commit with the numpy probe_train"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timings: best of this many runs")
    args = parser.parse_args()
    old = load_old(args.old_rev)
    fit_table(old, args.repeat)
    auc_table(old, args.repeat)
    train_table(old, args.repeat)


if __name__ == "__main__":
    main()
