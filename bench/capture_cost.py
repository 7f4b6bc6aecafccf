"""What ``ponder eval --features`` costs: generation with and without the capture.

On one embedded engine, for each of the first ``--problems`` GSM8K problems, this draws
``--n`` samples of the problem's prompt twice through the plain sampling path
(``ponder.strategies.sampling.sample``, as ``majority`` draws them), with the problem's
own seed both times:

- plain: no logprobs, as a run without ``--features`` draws them;
- capture: with the top ``DEFAULT_TOP_K`` logprobs of every token, and each sample's
  features computed from them (``sample_features``), as a run with ``--features``
  does; with ``--hidden``, also each sample's hidden states read while decoding, as
  ``--features --hidden`` does;

and prints the generated tokens, seconds and tokens/s of each side and their ratio.
The two sides of a problem run one after the other, the first side alternating from
problem to problem so that drift on a shared machine falls on both; the prompt is
prefilled in full each time (``prefix_reuse=False``), so neither side finds it cached.
With the same seeds both sides draw the same samples; the table says whether they did.

    python bench/capture_cost.py --model smollm2-135m --problems 4 --n 4 --max-tokens 128

Seen once, 2026-12-06, smollm2-135m, 4 problems x 4 samples, 64 tokens, on 2 cores
shared with a qwen2.5-coder-1.5b job (so both rates are that job's leftovers, not the
model's speed): plain 3.9 tokens/s, capture 4.1 (ratio 1.04, within the noise), the
features 0.04 s of 251 s, the same samples on both sides.

On a quiet machine, 2026-12-06, qwen2.5-coder-1.5b with ``--hidden --problems 4 --n 4
--max-tokens 256``: plain 13.6 tokens/s, capture 13.0 (ratio 0.96), the same 3,844
tokens on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from ponder.core.context import Context
from ponder.core.engine import Engine
from ponder.core.errors import ConfigError
from ponder.core.task import Task
from ponder.core.types import Problem
from ponder.engines.llamacpp import LlamaCppEngine
from ponder.engines.registry import make_engine
from ponder.runs.job import problem_seed
from ponder.strategies.sampling import sample
from ponder.tasks import make_task
from ponder.verifiers.features import DEFAULT_TOP_K, sample_features

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


@dataclass
class Side:
    """One side's totals over the problems, and its samples' texts in order."""

    tokens: int = 0
    seconds: float = 0.0
    feature_seconds: float = 0.0
    texts: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


async def draw(
    engine: Engine, task: Task, problem: Problem, args: argparse.Namespace, side: Side, top: int
) -> None:
    """The problem's samples on ``side``, captured with ``top`` alternatives (0: plain)."""
    ctx = Context(
        engine,
        task,
        max_tokens=args.max_tokens,
        seed=problem_seed(args.seed, problem.id),
        capture_top_logprobs=top,
        capture_hidden=bool(top) and args.hidden,
    )
    start = time.perf_counter()
    comps = await sample(problem, ctx, args.n, args.temperature, 0.95)
    if top:
        t0 = time.perf_counter()
        for c in ctx.captured:
            assert c.logprobs is not None
            assert not args.hidden or c.hidden is not None or c.usage.completion_tokens < 2
            sample_features(c.logprobs)
        side.feature_seconds += time.perf_counter() - t0
    side.seconds += time.perf_counter() - start
    side.tokens += sum(c.usage.completion_tokens for c in comps)
    side.texts.extend(c.text for c in comps)


async def measure(args: argparse.Namespace) -> tuple[Side, Side]:
    task = make_task("gsm8k", data=str(args.data))
    problems = task.load(args.problems)
    engine = make_engine(
        args.model, n_parallel=args.n, n_ctx=args.n_ctx, prefix_reuse=False, log=lambda _: None
    )
    if not isinstance(engine, LlamaCppEngine):
        await engine.aclose()
        raise ConfigError(
            f"{args.model} is not run by the embedded engine; pass a .gguf or bundled model"
        )
    plain, capture = Side(), Side()
    try:
        # warm-up: the weights paged in and the threads started before any timing
        await draw(engine, task, problems[0], _warm(args), Side(), 0)
        for i, problem in enumerate(problems):
            sides = [(plain, 0), (capture, DEFAULT_TOP_K)]
            for side, top in sides if i % 2 == 0 else reversed(sides):
                await draw(engine, task, problem, args, side, top)
    finally:
        await engine.aclose()
    return plain, capture


def _warm(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "n": 1, "max_tokens": 8})


def table(plain: Side, capture: Side, hidden: bool = False) -> str:
    label = f"top-{DEFAULT_TOP_K} logprobs + features" + (" + hidden" if hidden else "")
    rows = [
        f"{'side':<37} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}",
        f"{'plain':<37} {plain.tokens:>7} {plain.seconds:>8.2f} {plain.rate:>9.1f}",
        f"{label:<37} {capture.tokens:>7} {capture.seconds:>8.2f} {capture.rate:>9.1f}",
        f"ratio (capture / plain tokens/s): {capture.rate / plain.rate:.3f}"
        if plain.rate > 0
        else "ratio: no plain tokens",
        f"of which computing features: {capture.feature_seconds:.3f} s",
        f"same samples on both sides: {'yes' if plain.texts == capture.texts else 'NO'}",
    ]
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a bundled model name or a .gguf file")
    p.add_argument("--problems", type=int, default=4, help="first K GSM8K test problems")
    p.add_argument("--n", type=int, default=4, help="samples per problem (and decode slots)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-ctx", type=int, default=1024, help="context per sequence")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="GSM8K test.jsonl")
    p.add_argument(
        "--hidden", action="store_true", help="capture the hidden states too (--features --hidden)"
    )
    args = p.parse_args()
    plain, capture = asyncio.run(measure(args))
    print(
        f"{args.model}: {args.problems} GSM8K problems x {args.n} samples, "
        f"max {args.max_tokens} tokens, temperature {args.temperature}"
    )
    print(table(plain, capture, args.hidden))


if __name__ == "__main__":
    main()
