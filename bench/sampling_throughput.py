"""Sampling throughput: LlamaCppEngine's ``n`` samples against ``n`` high-level calls.

For each ``n``, in the same process, on the same model and prompt, this times

- baseline: ``n`` sequential ``Llama.create_completion`` calls of llama-cpp-python's
  own high-level API (one sequence at a time; it reuses the cached prompt between
  calls), and
- engine: one ``LlamaCppEngine.generate`` call with ``GenRequest(n=n)``, which
  prefills the prompt once and decodes the ``n`` sequences in shared batches
  (``--n-parallel`` at a time),

both sampling at the same temperature with the same thread count, and prints
generated tokens per second on each side and their ratio. The prompt is the start
of a source file, so the coder model writes far past ``--max-tokens`` and both sides
generate the same number of tokens; the token counts are printed to show it. Each
side is warmed up with the same prompt first, so both serve it from their cache. On
a shared machine timings wander, so each side runs ``--repeats`` times, alternating,
and its fastest run is reported.

Only one thread runs llama.cpp at a time: the baseline runs in a thread that exits
before the engine (a fresh one per ``n``) starts, because libgomp shortens its
spin-waits once more OpenMP threads exist than cores, and two live compute threads
slowed whichever side ran second by about 40% on two cores.

    python bench/sampling_throughput.py --model PATH --max-tokens 64 --n 1 4 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ponder.engines.llamacpp import LlamaCppEngine
from ponder.types import GenRequest

FALLBACK_MODEL = Path("/tmp/models/qwen2.5-coder-1.5b.gguf")
PROMPT = (
    '"""Small utilities for parsing, validating and summarising CSV files."""\n\n'
    "import csv\nimport os\nimport statistics\nfrom dataclasses import dataclass\n\n\n"
)


@dataclass
class Timing:
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def default_model() -> Path:
    """``PONDER_BENCH_MODEL``, else the bundled qwen2.5-coder-1.5b if pulled, else /tmp."""
    env = os.environ.get("PONDER_BENCH_MODEL")
    if env:
        return Path(env)
    from ponder import models

    if models.is_ready(models.DEFAULT_MODEL):
        return models.model_path(models.DEFAULT_MODEL)
    return FALLBACK_MODEL


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def complete(llm: Any, max_tokens: int, temperature: float, seed: int) -> int:
    llm.set_seed(seed)
    out = llm.create_completion(
        PROMPT,
        max_tokens=max_tokens,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        min_p=0.0,
        repeat_penalty=1.0,
    )
    return int(out["usage"]["completion_tokens"])


def run_baseline(llm: Any, n: int, max_tokens: int, temperature: float, seed: int) -> Timing:
    """``n`` sequential high-level calls, timed, in a thread that then exits."""
    timing: list[Timing] = []

    def work() -> None:
        complete(llm, 4, temperature, seed)  # warm-up: caches the prompt
        start = time.perf_counter()
        tokens = sum(complete(llm, max_tokens, temperature, seed + i) for i in range(n))
        timing.append(Timing(tokens, time.perf_counter() - start))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return timing[0]


async def run_engine(args: argparse.Namespace, n_ctx: int, n: int) -> Timing:
    """One ``generate`` with ``GenRequest(n=n)``, timed, on an engine closed afterwards."""
    engine = LlamaCppEngine(
        args.model, n_ctx=n_ctx, n_parallel=args.n_parallel, n_threads=args.threads
    )
    try:
        warm = GenRequest(prompt=PROMPT, max_tokens=4, temperature=args.temperature)
        await engine.generate([warm])  # warm-up: leaves the prompt in a slot
        request = GenRequest(
            prompt=PROMPT,
            n=n,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seed=args.seed,
        )
        start = time.perf_counter()
        [completions] = await engine.generate([request])
        seconds = time.perf_counter() - start
    finally:
        await engine.aclose()
    return Timing(sum(c.usage.completion_tokens for c in completions), seconds)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--n-parallel", type=int, default=4, help="engine slots")
    parser.add_argument("--threads", type=int, default=cores())
    parser.add_argument(
        "--baseline-threads",
        type=int,
        default=None,
        help="generation threads of the high-level API (default: --threads; "
        "llama-cpp-python's own default is cores // 2)",
    )
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; best is kept")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"model not found: {args.model} (pass --model PATH)", file=sys.stderr)
        return 2

    from llama_cpp import Llama

    n_ctx = len(PROMPT) + args.max_tokens + 64  # characters bound tokens from above
    llm = Llama(
        str(args.model),
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=args.baseline_threads or args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    print(
        f"# {args.model.name}, max_tokens={args.max_tokens}, temperature={args.temperature}, "
        f"threads={args.threads} (high-level: {args.baseline_threads or args.threads}), "
        f"engine n_parallel={args.n_parallel}, best of {args.repeats}"
    )
    print(f"# {date.today().isoformat()}, {platform.machine()}, {cores()} cores")
    header = (
        f"{'n':>3} | {'high-level tok':>14} {'s':>7} {'tok/s':>7} | "
        f"{'engine tok':>10} {'s':>7} {'tok/s':>7} | {'ratio':>5}"
    )
    print(header)
    print("-" * len(header))
    for n in args.n:
        runs = []
        for _ in range(args.repeats):
            runs.append(run_baseline(llm, n, args.max_tokens, args.temperature, args.seed))
            runs.append(await run_engine(args, n_ctx, n))
        base = min(runs[0::2], key=lambda t: t.seconds)
        ours = min(runs[1::2], key=lambda t: t.seconds)
        same = "" if base.tokens == ours.tokens else "  (token counts differ)"
        print(
            f"{n:>3} | {base.tokens:>14} {base.seconds:>7.2f} {base.rate:>7.1f} | "
            f"{ours.tokens:>10} {ours.seconds:>7.2f} {ours.rate:>7.1f} | "
            f"{ours.rate / base.rate:>4.2f}x{same}"
        )
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
