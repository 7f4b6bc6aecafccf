"""A fixed free-form QA set from FanOutQA's single-hop questions, offline.

The PyPI package ``fanoutqa`` (1.1.1, code MIT, data CC BY-SA 4.0: Zhu et al. 2024,
"FanOutQA: A Multi-Hop, Multi-Document Question Answering Benchmark for Large Language
Models") ships its dev set inside the wheel. Each multi-hop question there is broken into
single-hop sub-questions with short Wikipedia answers ("What is the official language of
Monaco?" -> "French"). This script takes the leaf sub-questions whose answer is text of
at most ``--max-words`` words, drops repeated questions, shuffles them with a fixed seed
and writes the first ``--limit`` as JSONL (``id``, ``question``, ``answer``) for
``ponder eval --task jsonl --answer-type free``.

Only the wheel is read (``pip download --no-deps fanoutqa==1.1.1``); the package itself
(which needs spaCy) is never installed or imported.

    python bench/freeform_data.py --wheel /tmp/fanoutqa-1.1.1-py3-none-any.whl \\
        --out runs/freeform/fanoutqa-leaves.jsonl --limit 200
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

WHEEL = "fanoutqa==1.1.1"
DEV = "fanoutqa/data/fanout-final-dev.json"


def leaves(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for sub in node.get("decomposition", []):
        if sub.get("decomposition"):
            yield from leaves(sub)
        else:
            yield sub


def download_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(folder)],
        check=True,
    )
    (wheel,) = folder.glob("fanoutqa-*.whl")
    return wheel


def build(wheel: Path, limit: int, max_words: int, seed: int) -> list[dict[str, str]]:
    with zipfile.ZipFile(wheel) as zf:
        dev = json.loads(zf.read(DEV))
    seen: set[str] = set()  # questions and ids already taken
    rows: list[dict[str, str]] = []
    for top in dev:
        for leaf in leaves(top):
            answer, question = leaf.get("answer"), str(leaf.get("question", "")).strip()
            pid = str(leaf["id"])
            if not isinstance(answer, str) or not question or {question, pid} & seen:
                continue
            if not answer.strip() or len(answer.split()) > max_words:
                continue
            seen.update((question, pid))
            rows.append({"id": pid, "question": question, "answer": answer.strip()})
    random.Random(seed).shuffle(rows)
    return rows[:limit]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel", type=Path, help="the fanoutqa wheel (default: pip download it)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--max-words", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        rows = build(wheel, args.limit, args.max_words, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    args.out.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    print(f"wrote {len(rows)} questions to {args.out} (sha256 {digest}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
