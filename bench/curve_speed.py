"""How long ``scaling_curve`` takes for 1000 bootstrap replicates on 50 problems x 8
samples, per method (the report computes one such curve per run).

    python bench/curve_speed.py [--problems 50] [--samples 8] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import random
import time

from ponder.analysis.curves import scaling_curve
from ponder.core.types import Candidate, Usage
from ponder.runs.store import Record


def records(problems: int, samples: int, seed: int = 0) -> list[Record]:
    rng = random.Random(seed)
    out = []
    for i in range(problems):
        answers = [rng.choice(["A", "B", "C", "D", None]) for _ in range(samples)]
        cands = tuple(
            Candidate(f"answer: {a}", a, Usage(10 if j == 0 else 0, 0, 5), score=rng.random())
            for j, a in enumerate(answers)
        )
        out.append(
            Record(
                problem_id=f"p{i}",
                idx=i,
                question="q",
                reference="A",
                answer=None,
                correct=False,
                candidates=cands,
                answer_correct={a: a == "A" for a in answers if a is not None},
                usage=sum((c.usage for c in cands), Usage()),
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    recs = records(args.problems, args.samples)
    for method in ("majority", "best_of_n", "weighted"):
        scaling_curve(recs[:2], method, bootstrap=10)  # warm up numpy
        t0 = time.perf_counter()
        scaling_curve(recs, method, bootstrap=args.bootstrap)
        print(f"{method:>10}: {time.perf_counter() - t0:.3f} s for {args.bootstrap} replicates")


if __name__ == "__main__":
    main()
