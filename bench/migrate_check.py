"""Show that migrating the banks (bench/migrate_banks.sh) changed no figure.

For every bank in bench/banks that differs from its version at ``--before`` (a git
revision), the records are paired by position and compared field by field: only the
problem id may differ, and only for a renamed record. Per bank it prints the records,
how many were renamed, and the accuracy and mean tokens per problem read from both
versions, which must be equal. Exits 1 on any other difference.

    python bench/migrate_check.py --before f62c609
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path

from ponder.runs.archive import read_archive
from ponder.runs.store import Record


def _old(revision: str, path: Path, folder: Path) -> Path:
    out = folder / path.name
    blob = subprocess.run(
        ["git", "show", f"{revision}:{path.as_posix()}"], check=True, capture_output=True
    ).stdout
    out.write_bytes(blob)
    return out


def _figures(records: list[Record]) -> tuple[float, float]:
    done = [r for r in records if r.ok]
    if not done:
        return float("nan"), float("nan")
    accuracy = sum(r.correct for r in done) / len(done)
    return accuracy, sum(r.usage.total_tokens for r in done) / len(done)


def check(revision: str, banks: Path) -> int:
    failures = 0
    print(f"{'bank':52} {'records':>7} {'renamed':>7} {'accuracy':>17} {'tokens/problem':>19}")
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(banks.glob("*.jsonl.gz")):
            _, _, old = read_archive(_old(revision, path, Path(tmp)))
            new_config, problems, new = read_archive(path)
            if "data" not in new_config:
                print(f"{path.name:52} not migrated")
                continue
            problems_ok = {r.problem_id for r in new} <= set(problems)
            same = len(old) == len(new) and problems_ok
            renamed = 0
            for a, b in zip(old, new, strict=False):
                renamed += a.problem_id != b.problem_id
                if dataclasses.replace(a, problem_id=b.problem_id) != b:
                    same = False
            (acc0, tok0), (acc1, tok1) = _figures(old), _figures(new)
            same = same and (acc0, tok0) == (acc1, tok1)
            failures += not same
            print(
                f"{path.name:52} {len(new):7d} {renamed:7d} {acc0:8.3f} {acc1:8.3f} "
                f"{tok0:9.1f} {tok1:9.1f}" + ("" if same else "  DIFFERS")
            )
    print(
        "every migrated bank holds the same records and figures"
        if not failures
        else f"{failures} banks differ"
    )
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the git revision before migration")
    parser.add_argument("--banks", default="bench/banks", type=Path)
    args = parser.parse_args()
    return check(args.before, args.banks)


if __name__ == "__main__":
    sys.exit(main())
