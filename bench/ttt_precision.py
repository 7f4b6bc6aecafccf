"""Seconds per LoRA training step of the TTT model in float32, mixed (float32 weights,
bfloat16 autocast) and bfloat16, side by side in one process, on one sequence of
``--tokens`` tokens (after ``--warmup`` steps each), with the loss each gives.

    python bench/ttt_precision.py --model qwen2.5-coder-0.5b --tokens 300 --steps 4
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    import torch
    from peft import LoraConfig, get_peft_model

    from ponder.ttt.model import DTYPES, load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ids = torch.randint(100, 1000, (1, args.tokens), generator=torch.Generator().manual_seed(0))
    base = None
    print(f"{args.model}, one sequence of {args.tokens} tokens, {torch.get_num_threads()} threads")
    print("| dtype | seconds per step (median) | x float32 | loss |")
    print("|---|---|---|---|")
    for dtype in DTYPES:
        lm = load_model(args.model, dtype=dtype)
        config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(lm.model, config)
        model.train()
        times = []
        loss = float("nan")
        for step in range(args.warmup + args.steps):
            start = time.perf_counter()
            with lm.compute():
                out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            model.zero_grad()
            if step >= args.warmup:
                times.append(time.perf_counter() - start)
            loss = float(out.loss.detach())
        median = statistics.median(times)
        base = base or median
        print(f"| {dtype} | {median:.2f} | {base / median:.2f} | {loss:.4f} |", flush=True)
        model.unload()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
