"""The HumanEval table for BENCHMARKS.md from a report's numbers (``ponder report``'s
``curve.json``): per run its own pass rate, pass@k over its samples, tokens and
sandboxed executions per problem.

    python bench/humaneval_table.py runs/humaneval-164/report/curve.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _num(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def table(numbers: dict[str, Any]) -> str:
    runs = numbers["runs"]
    ks = sorted({p["k"] for run in runs for p in run.get("pass_at_k") or []})
    head = [
        "run", "problems", "answer correct", *(f"pass@{k}" for k in ks),
        "tokens/problem", "generated/problem", "executions/problem", "ms/execution",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        point = run.get("point") or {}
        passes = {p["k"]: p["pass"] for p in run.get("pass_at_k") or []}
        execution = run.get("execution") or {}
        each = execution.get("seconds_per_execution")
        cells = [
            run["label"],
            str(point.get("problems", 0)),
            _num(point.get("accuracy")),
            *(_num(passes.get(k)) for k in ks),
            _num(point.get("tokens"), 0),
            _num(point.get("completion_tokens"), 0),
            _num(execution.get("executions_per_problem"), 2),
            _num(None if each is None else 1000 * each, 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("curve_json", type=Path)
    args = ap.parse_args()
    print(table(json.loads(args.curve_json.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
