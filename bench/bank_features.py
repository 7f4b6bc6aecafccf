"""Prefilled tokens/s of ``ponder bank features``: batched against one sample at a time,
or (``--compare hidden``) without and with the hidden states (``--hidden``).

Imports a bank archive twice into a scratch folder and runs the features pass over its
first problems on each copy, one after the other in this process: first with the
samples of a problem prefilled together (``--batch`` slots, several samples per decode
call), then with one slot (one sample per decode call, the prompt still computed once
per problem). Prints both passes' lines and the ratio of their prefilled tokens/s.

    python bench/bank_features.py bench/banks/gsm8k-test-maj16.jsonl.gz \\
        --model qwen2.5-coder-1.5b --limit 5 --batch 16

Measured 2026-12-06 on 2 cores (nothing else running): 80 samples, 23,309 tokens
prefilled, batched 62.5 tokens/s (373 s), one at a time 66.6 tokens/s (350 s), ratio
0.94. Both are compute-bound: llama_decode took 94% of a pass, the logprobs' numpy
5%; a plain 530-token prefill of this model (logits at the last token only) ran at
79.5 tokens/s and the same tokens scored (logits at every token) at 64.8 tokens/s.

``--compare hidden`` runs both passes at ``--batch``, the second reading and storing
the hidden states; both prefill the same tokens, so the seconds are the hidden cost.
Measured 2026-12-06 on smollm2-135m, 2 cores busy with another model job (load about
4): a bank of 4 gsm8k problems x 4 samples drawn by smollm2, 3,482 tokens prefilled in
each pass, --batch 4: 123.8 s without, 121.1 s with hidden states. The difference is
below this busy machine's noise; no extra token is computed.

    python bench/bank_features.py SMOLLM2-BANK.jsonl.gz --model smollm2-135m \
        --limit 4 --batch 4 --compare hidden
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from ponder.analysis.bank_features import FeaturePass, compute_bank_features
from ponder.engines.registry import make_engine
from ponder.runs.archive import import_store
from ponder.runs.store import RunStore
from ponder.tasks import make_task


def _pass(bank: Path, args: argparse.Namespace, batch: int, hidden: bool) -> FeaturePass:
    with RunStore(bank, create=False) as store:
        config = store.config() or {}
    task = make_task(str(config["task"]), data=args.data)
    engine = make_engine(args.model, n_parallel=batch, n_ctx=args.n_ctx)

    async def go() -> FeaturePass:
        try:
            return await compute_bank_features(
                bank,
                engine,
                task,
                top_k=args.top_k,
                limit=args.limit,
                in_flight=2 if batch > 1 else 1,
                hidden=hidden,
            )
        finally:
            await engine.aclose()

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--data", default="../shared/data/gsm8k/test.jsonl")
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument(
        "--compare",
        choices=("batch", "hidden"),
        default="batch",
        help="batched against one at a time (default), or without against with --hidden",
    )
    args = parser.parse_args()
    passes = (
        (("batched", args.batch, False), ("one_at_a_time", 1, False))
        if args.compare == "batch"
        else (("plain", args.batch, False), ("hidden", args.batch, True))
    )
    with tempfile.TemporaryDirectory() as scratch:
        results = {}
        for name, batch, hidden in passes:
            bank = Path(scratch) / f"{name}.db"
            import_store(args.archive, bank)
            done = _pass(bank, args, batch, hidden)
            print(f"{name} (batch {batch}): {done.line()}", flush=True)
            results[name] = done
    first, second = (results[name] for name, _, _ in passes)
    ratio = first.tokens_per_second / second.tokens_per_second
    print(
        json.dumps(
            {
                name: {
                    "samples": r.samples,
                    "prefilled_tokens": r.prefilled_tokens,
                    "scored_tokens": r.scored_tokens,
                    "seconds": round(r.seconds, 1),
                    "tokens_per_second": round(r.tokens_per_second, 1),
                }
                for name, r in results.items()
            }
            | {"ratio": round(ratio, 2)}
        )
    )


if __name__ == "__main__":
    main()
