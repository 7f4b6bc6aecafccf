"""Sampling throughput: LlamaCppEngine's ``n`` samples against ``n`` high-level calls.

For each ``n``, in the same run, on the same model and prompt, this times

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

Each timed run happens in a fresh subprocess that loads the model, warms up, times
one side and exits, so the two sides never share a process: libgomp shortens its
spin-waits once more OpenMP threads exist than cores, and two llama.cpp users in one
process slowed whichever ran second by about 40% on two cores.

The baseline runs twice per repeat: with the engine's thread count, and with
llama-cpp-python's own default (``cores // 2`` generation threads), which is what a
tool that calls ``Llama(model_path)`` gets.

    python bench/sampling_throughput.py --model PATH --max-tokens 64 --n 1 4 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ponder.core.types import GenRequest
from ponder.engines.llamacpp import LlamaCppEngine

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
    from ponder.engines import models

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


def n_ctx_for(max_tokens: int) -> int:
    return len(PROMPT) + max_tokens + 64  # characters bound tokens from above


def run_baseline(args: argparse.Namespace, n: int, threads: int) -> Timing:
    """``n`` sequential high-level calls, timed after a warm-up that caches the prompt.
    Weights load as the engine loads them (see ``default_extra_buffers``)."""
    import llama_cpp.llama_cpp as low
    from llama_cpp import Llama

    from ponder.engines.llamacpp import default_extra_buffers

    defaults, extra = low.llama_model_default_params, default_extra_buffers(low)

    def model_params() -> Any:
        params = defaults()
        params.use_extra_bufts = extra
        return params

    low.llama_model_default_params = model_params
    llm = Llama(
        str(args.model),
        n_ctx=n_ctx_for(args.max_tokens),
        n_batch=512,
        n_threads=threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    try:
        complete(llm, 4, args.temperature, args.seed)
        start = time.perf_counter()
        tokens = sum(
            complete(llm, args.max_tokens, args.temperature, args.seed + i) for i in range(n)
        )
        return Timing(tokens, time.perf_counter() - start)
    finally:
        llm.close()


async def run_engine(args: argparse.Namespace, n: int) -> Timing:
    """One ``generate`` with ``GenRequest(n=n)``, timed, on an engine closed afterwards."""
    engine = LlamaCppEngine(
        args.model,
        n_ctx=n_ctx_for(args.max_tokens),
        n_parallel=args.n_parallel,
        n_threads=args.threads,
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


def measure(args: argparse.Namespace, side: str, n: int) -> Timing:
    """Time one side in a fresh subprocess (see the module docstring for why)."""
    cmd = [sys.executable, __file__, "--model", str(args.model), "--max-tokens",
           str(args.max_tokens), "--n-parallel", str(args.n_parallel), "--threads",
           str(args.threads), "--temperature", str(args.temperature), "--seed",
           str(args.seed), "--child", f"{side}:{n}"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} run failed:\n{proc.stderr[-2000:]}")
    tokens, seconds = proc.stdout.split()[-2:]
    return Timing(int(tokens), float(seconds))


def child(args: argparse.Namespace) -> int:
    side, n_text = args.child.split(":")
    n = int(n_text)
    if side == "engine":
        t = asyncio.run(run_engine(args, n))
    else:
        threads = args.threads if side == "same" else max(cores() // 2, 1)
        t = run_baseline(args, n, threads)
    print(t.tokens, t.seconds)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model())
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--n-parallel", type=int, default=4, help="engine slots")
    parser.add_argument("--threads", type=int, default=cores())
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--repeats", type=int, default=3, help="runs per side; best is kept")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"model not found: {args.model} (pass --model PATH)", file=sys.stderr)
        return 2
    if args.child:
        return child(args)
    default_threads = max(cores() // 2, 1)
    print(
        f"# {args.model.name}, max_tokens={args.max_tokens}, temperature={args.temperature}, "
        f"engine: {args.threads} threads, n_parallel={args.n_parallel}; best of {args.repeats}"
    )
    print(f"# {date.today().isoformat()}, {platform.machine()}, {cores()} cores")
    print(
        f"# high-level A: {args.threads} threads (same as the engine); "
        f"B: {default_threads} (llama-cpp-python's default, cores // 2)"
    )
    header = (
        f"{'n':>3} | {'tokens':>6} | {'A tok/s':>7} {'B tok/s':>7} | {'engine tok/s':>12} | "
        f"{'vs A':>5} {'vs B':>5}"
    )
    print(header)
    print("-" * len(header))
    for n in args.n:
        runs: dict[str, list[Timing]] = {"same": [], "default": [], "engine": []}
        for _ in range(args.repeats):
            for side in runs:
                runs[side].append(measure(args, side, n))
        best = {side: min(ts, key=lambda t: t.seconds) for side, ts in runs.items()}
        counts = {t.tokens for t in best.values()}
        note = "" if len(counts) == 1 else f"  (token counts differ: {sorted(counts)})"
        a, b, e = best["same"], best["default"], best["engine"]
        print(
            f"{n:>3} | {e.tokens:>6} | {a.rate:>7.1f} {b.rate:>7.1f} | {e.rate:>12.1f} | "
            f"{e.rate / a.rate:>4.2f}x {e.rate / b.rate:>4.2f}x{note}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
