"""Prefix reuse in step-level search: prompt tokens prefilled per expansion, and wall time.

Runs ``beam_search`` on the first ``--problems`` GSM8K test problems twice, on the same
model with the same seeds: once with the embedded engine's prefix reuse on (an
expansion prefills only what its parent added; the parent's KV cells are found in the
slot that generated it) and once with it off (every expansion prefills the question
and every step so far). For each side it prints, over all expansion requests, the
prompt tokens prefilled and served from cache per expansion, and the wall time; then
the ratio of wall times. The verifier is the same on both sides and its tokens are
reported apart (``score`` events), so the expansion figures are generation only.

Each side runs in its own subprocess, one after the other: two llama.cpp users in one
process (or two processes at once on two cores) slow each other down.

    python bench/search_prefill.py --problems 3 --n 4 --width 2 --verifier judge:step
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k"


async def _side(args: argparse.Namespace, reuse: bool) -> dict[str, Any]:
    from ponder.core.budget import Ledger
    from ponder.engines.llamacpp import LlamaCppEngine
    from ponder.engines.models import resolve
    from ponder.strategies import Context, make_strategy
    from ponder.tasks import make_task

    task = make_task("gsm8k", data=args.data)
    problems = task.load(args.problems)
    engine = LlamaCppEngine(
        str(resolve(args.model)), n_parallel=args.n_parallel, n_ctx=2048, prefix_reuse=reuse
    )
    strategy = make_strategy(
        "beam_search",
        {"n": args.n, "width": args.width, "verifier": args.verifier, "max_steps": 10},
    )
    expand_prompt = expand_cached = expansions = score_tokens = 0
    answers = []
    t0 = time.perf_counter()
    try:
        for i, problem in enumerate(problems):
            ledger = Ledger()
            ctx = Context(engine, task, ledger, max_tokens=args.max_tokens, seed=1000 * i)
            result = await strategy(problem, ctx)
            answers.append(result.answer)
            for event in ledger.events:
                if event.kind == "generate":
                    expansions += event.usage.calls
                    expand_prompt += event.usage.prompt_tokens
                    expand_cached += event.usage.cached_tokens
                else:
                    score_tokens += event.usage.prompt_tokens
        seconds = time.perf_counter() - t0
    finally:
        await engine.aclose()
    return {
        "reuse": reuse,
        "seconds": seconds,
        "expansions": expansions,
        "prefilled_per_expansion": expand_prompt / max(1, expansions),
        "cached_per_expansion": expand_cached / max(1, expansions),
        "verifier_prompt_tokens": score_tokens,
        "answers": answers,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    p.add_argument("--data", default=str(DATA / "test.jsonl"))
    p.add_argument("--problems", type=int, default=3)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--width", type=int, default=2)
    p.add_argument("--verifier", default="judge:step")
    p.add_argument("--max-tokens", type=int, default=320)
    p.add_argument("--n-parallel", type=int, default=4)
    p.add_argument("--side", choices=["on", "off"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        print(json.dumps(asyncio.run(_side(args, args.side == "on"))))
        return
    results = {}
    for side in ("on", "off"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--side", side]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[side] = json.loads(out.strip().splitlines()[-1])
    print(
        f"# search_prefill  {date.today()}  {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores  model={args.model}  beam_search n={args.n} "
        f"width={args.width} verifier={args.verifier}  {args.problems} GSM8K problems"
    )
    print(
        f"{'prefix reuse':<14}{'expansions':>11}{'prefilled/exp':>15}{'cached/exp':>12}"
        f"{'verifier prompt':>17}{'seconds':>9}"
    )
    for side in ("on", "off"):
        r = results[side]
        print(
            f"{side:<14}{r['expansions']:>11}{r['prefilled_per_expansion']:>15.1f}"
            f"{r['cached_per_expansion']:>12.1f}{r['verifier_prompt_tokens']:>17}"
            f"{r['seconds']:>9.1f}"
        )
    on, off = results["on"], results["off"]
    print(f"wall time, reuse off / on: {off['seconds'] / on['seconds']:.2f}x")
    same = on["answers"] == off["answers"]
    print(f"answers on / off: {on['answers']} / {off['answers']} ({'same' if same else 'differ'})")


if __name__ == "__main__":
    main()
