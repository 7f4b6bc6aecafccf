"""The problem ids a ``ponder eval`` selection picks, one per line (for ``ponder export
--exclude``): the same task, data and ``--where``/``--limit-each``/``--limit`` flags.

    python bench/problem_ids.py math500 --data ../shared/data/math500/test.jsonl \
        --where level=1,2,3,4,5 --limit-each 4
"""

from __future__ import annotations

import argparse

from ponder.tasks.registry import make_task
from ponder.tasks.select import pick_problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task")
    ap.add_argument("--data")
    ap.add_argument("--where", action="append", default=[])
    ap.add_argument("--limit-each", type=int)
    ap.add_argument("--limit", type=int)
    args = ap.parse_args(argv)
    task = make_task(args.task, args.data)
    for p in pick_problems(task, limit=args.limit, where=args.where, limit_each=args.limit_each):
        print(p.id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
