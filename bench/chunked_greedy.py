"""Is a greedy chain written in chunks (as probe_exit writes it) the greedy chain?

For the first LIMIT GSM8K test problems: the greedy chain in one request (`single`)
against the same chain written by `probe_exit` in chunks of CHUNK tokens with probes
that never stop it (agree far above the number of probes), on the embedded engine with
prefix reuse on and off. Prints, per problem, whether the texts are equal and where
they part.

    python bench/chunked_greedy.py --model smollm2-135m --limit 3 --chunk 16
"""

from __future__ import annotations

import argparse
import asyncio

from ponder.core.budget import Ledger
from ponder.engines import models
from ponder.engines.llamacpp import LlamaCppEngine
from ponder.strategies import Context, make_strategy
from ponder.tasks import make_task


async def compare(reuse: bool, args: argparse.Namespace) -> None:
    engine = LlamaCppEngine(str(models.resolve(args.model)), prefix_reuse=reuse)
    task = make_task("gsm8k", data=args.data)
    same = 0
    try:
        problems = task.load(args.limit)
        for p in problems:
            texts = []
            for name, options in (
                ("single", {}),
                ("probe_exit", {"chunk": args.chunk, "agree": 10_000}),
            ):
                ctx = Context(engine=engine, task=task, ledger=Ledger(), max_tokens=args.max_tokens)
                result = await make_strategy(name, options)(p, ctx)
                texts.append(result.candidates[0].text)
            one, chunked = texts
            if one == chunked:
                same += 1
                print(f"prefix reuse {reuse}: {p.id}: same text ({len(one)} characters)")
                continue
            at = next(
                (i for i, (a, b) in enumerate(zip(one, chunked, strict=False)) if a != b),
                min(len(one), len(chunked)),
            )
            print(
                f"prefix reuse {reuse}: {p.id}: differ at character {at}: "
                f"{one[max(0, at - 25) : at + 25]!r} | {chunked[max(0, at - 25) : at + 25]!r}"
            )
    finally:
        await engine.aclose()
    print(f"prefix reuse {reuse}: {same} of {args.limit} chains the same")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data", default="../shared/data/gsm8k/test.jsonl")
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=160)
    args = ap.parse_args()
    for reuse in (True, False):
        asyncio.run(compare(reuse, args))


if __name__ == "__main__":
    main()
