"""Compare two trees written by bench/reports_check.sh: every text output and every
report's curve.json must hold the same figures (timestamps and paths aside)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# what differs between two rebuilds without being a figure: the two roots' paths,
# wall-clock stamps, an eval's own seconds at the end of its summary line, and the hash
# of a policy file (it holds its creation time)
VOLATILE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?")
EVAL_SECONDS = re.compile(r"(tokens/problem), [\d.]+s$", re.M)
VOLATILE_KEYS = {"version", "ponder_version", "created", "written_at", "policy_sha256"}


def _normalise(text: str, root: Path) -> str:
    text = VOLATILE.sub("<time>", text.replace(str(root), "<root>"))
    return EVAL_SECONDS.sub(r"\1, <seconds>", text)


def _files(root: Path) -> dict[str, Path]:
    keep = {".txt", ".json", ".md"}
    return {
        str(p.relative_to(root)): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in keep and not p.name.endswith(".err")
    }


def _strip_json(value: object) -> object:
    if isinstance(value, dict):
        return {k: _strip_json(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip_json(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = _files(args.before), _files(args.after)
    differ = 0
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            print(f"only in {'after' if name in after else 'before'}: {name}")
            differ += 1
            continue
        a = _normalise(before[name].read_text(), args.before)
        b = _normalise(after[name].read_text(), args.after)
        if name.endswith(".json"):
            same = _strip_json(json.loads(a)) == _strip_json(json.loads(b))
        else:
            same = a == b
        print(f"{'same  ' if same else 'DIFFER'} {name}")
        differ += not same
    print(f"{len(before)} files before, {len(after)} after, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
