"""Two jobs on two cores: one process on both, or one process pinned to each core?

Long banks queue up behind each other on this 2-core machine, and two llama.cpp users
that each take both cores spin-wait each other to a crawl. Pinned, each to its own core
(``taskset -c 0`` and ``taskset -c 1``; the embedded engine takes as many threads as
its affinity allows), they do not share a core at all. This bench times, in one run:

- ``both``: one process with both cores draws ``--n`` samples (the engine's batched
  ``GenRequest(n=...)``), twice in a row: the work of two jobs, one after the other;
- ``pinned``: two processes at once, one per core, each drawing ``--n`` samples;

and prints generated tokens per second over the wall time of each side and their
ratio. Each timed run is a fresh process that loads the model and warms up first; the
wall time counted starts when both have warmed up. Nothing else may run meanwhile.

    python bench/core_split.py --model qwen2.5-coder-1.5b --n 4 --max-tokens 256
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ponder.core.types import GenRequest, Message
from ponder.engines.llamacpp import LlamaCppEngine

QUESTION = (
    "A baker makes 3 batches of 24 muffins and sells them in boxes of 6. Each box costs "
    "$4. She gives away 2 boxes and sells the rest. How much money does she make? "
    "Think step by step, then give the final answer."
)


async def draw(args: argparse.Namespace, go: Path) -> dict[str, float]:
    from ponder.engines import models

    path = Path(args.model)
    if not path.is_file():
        path = models.model_path(args.model)
    engine = LlamaCppEngine(path, n_ctx=2048, n_parallel=args.n)
    try:
        messages = (Message("user", QUESTION),)
        await engine.generate([GenRequest(messages=messages, max_tokens=4)])
        ready = time.time()
        print(json.dumps({"ready": ready}), flush=True)
        while not go.exists():  # the parent starts every child's clock at once
            time.sleep(0.01)
        start = time.perf_counter()
        tokens = 0
        for _ in range(args.rounds):  # the same seeded samples each round: the same work
            request = GenRequest(
                messages=messages, n=args.n, max_tokens=args.max_tokens, temperature=0.7,
                seed=args.seed,
            )  # fmt: skip
            [out] = await engine.generate([request])
            tokens += sum(c.usage.completion_tokens for c in out)
        return {"tokens": tokens, "seconds": time.perf_counter() - start,
                "threads": len(os.sched_getaffinity(0))}  # fmt: skip
    finally:
        await engine.aclose()


def side(args: argparse.Namespace, cores: list[set[int]], rounds: int, go: Path) -> dict[str, Any]:
    """Children with the given affinities, started together; their summed tokens over
    the wall time from the go signal to the last one's end."""
    go.unlink(missing_ok=True)
    procs = []
    for mask in cores:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(mask))), sys.executable, __file__,
               "--child", "--model", str(args.model), "--n",
               str(args.n), "--max-tokens", str(args.max_tokens), "--seed", str(args.seed),
               "--rounds", str(rounds), "--go", str(go)]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"a child failed before warming up:\n{p.stderr.read()[-2000:]}")
    start = time.perf_counter()
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a child failed:\n{err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.perf_counter() - start
    tokens = sum(r["tokens"] for r in results)
    return {"tokens": tokens, "wall": wall, "rate": tokens / wall, "children": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="a name or a GGUF path")
    ap.add_argument("--n", type=int, default=4, help="samples a request")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--go", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        assert args.go is not None
        print(json.dumps(asyncio.run(draw(args, args.go))))
        return 0
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        raise SystemExit("needs at least two cores")
    a, b = available[:2]
    go = Path(f"/tmp/core-split-{os.getpid()}.go")
    try:
        both = side(args, [{a, b}], 2, go)
        pinned = side(args, [{a}, {b}], 1, go)
    finally:
        go.unlink(missing_ok=True)
    print(f"{args.model}: {args.n} samples of {args.max_tokens} tokens a job, two jobs")
    print("| side | tokens | wall seconds | tokens/s |")
    print("|---|---|---|---|")
    for name, r in (("one process, both cores, jobs in turn", both),
                     ("two processes, one core each, at once", pinned)):  # fmt: skip
        print(f"| {name} | {r['tokens']} | {r['wall']:.1f} | {r['rate']:.1f} |")
    print(f"pinned / both: {pinned['rate'] / both['rate']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
