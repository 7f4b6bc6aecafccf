"""Traces of served requests: every inner call a request made, and what was chosen.

A traced request runs on a detailed ledger (``ponder.core.budget.Ledger``); when it ends,
its trace is a list of JSON records, in this order:

- ``{"type": "request", "id", "created", "model", "strategy", "options", "budget",
  "max_tokens", "seed", "messages"}``: what was asked;
- one ``{"type": "call", "index", "kind", "label", "seconds", "usage", ...}`` per ledger
  event, in the order they happened. An engine call (``kind`` ``generate``, ``score``
  for a verifier's own model calls, ``probe``) has ``requests``: each with its
  ``messages`` (or raw ``prompt``), the assistant's ``continuation`` so far, ``n``,
  ``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``; and ``outputs``: per
  request, each completion's ``text``, ``finish_reason`` and ``usage``. A ``verdict``
  is a verifier's judgement: its ``scorer`` and ``scores`` (one per candidate, with the
  steps of a process verifier), its ``seconds`` those of the whole scoring. Other
  events (an embedding, programs run in the sandbox) have their usage and seconds;
- ``{"type": "decision", "answer", "votes", "chosen", "candidates", "meta", "usage",
  "seconds"}`` when the strategy finished: the answer that won, the votes per answer,
  the index of the candidate whose text the reply returns, each candidate's answer,
  score and finish reason, the strategy's own account (``Result.meta``: clusters,
  stopping, selection), and the request's usage; or ``{"type": "error", "status",
  "message", "usage"}`` when it failed.

``ponder serve --trace DIR`` writes the trace of every request that ran to
``DIR/<reply id>.jsonl``, one record a line, as the request ends (failed ones too; one
refused before any work has none); a trace that cannot be written is logged and the
reply still goes out. A request with
``"ponder": {"trace": true}`` gets its own trace back in the reply's ``ponder.trace``
(in the error's ``ponder.trace`` when it fails), with or without ``--trace``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ponder.core.budget import Event, Ledger
from ponder.core.errors import ConfigError
from ponder.core.types import Completion, GenRequest, Message, Result, Score, Usage

__all__ = ["TraceWriter", "call_record", "decision_record", "trace_records"]


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: containers walked, dataclasses of ponder's own
    through their ``to_dict``, numbers that JSON cannot spell (NaN, inf) and anything
    else as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict())
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _jsonable(item())
    return str(value)


def _request(r: GenRequest) -> dict[str, Any]:
    out: dict[str, Any] = (
        {"messages": [m.to_dict() for m in r.messages]}
        if r.messages is not None
        else {"prompt": r.prompt}
    )
    out.update(
        continuation=r.continuation, n=r.n, max_tokens=r.max_tokens,
        temperature=r.temperature, top_p=r.top_p, seed=r.seed, stop=list(r.stop),
    )  # fmt: skip
    return out


def _completion(c: Completion) -> dict[str, Any]:
    return {"text": c.text, "finish_reason": c.finish_reason, "usage": c.usage.to_dict()}


def _score(s: Score) -> Any:
    return {"value": s.value, "steps": list(s.steps)} if s.steps else s.value


def call_record(index: int, event: Event) -> dict[str, Any]:
    """One ledger event as a trace record (see the module docstring)."""
    out: dict[str, Any] = {
        "type": "call",
        "index": index,
        "kind": event.kind,
        "label": event.label,
        "seconds": round(event.seconds, 6),
        "usage": event.usage.to_dict(),
    }
    if event.executions:
        out.update(executions=event.executions, isolation=event.isolation)
    detail = event.detail or {}
    if "requests" in detail:
        requests: Sequence[GenRequest] = detail["requests"]
        outputs: Sequence[Sequence[Completion]] = detail["outputs"]
        out["requests"] = [_request(r) for r in requests]
        out["outputs"] = [[_completion(c) for c in comps] for comps in outputs]
    if "scores" in detail:
        out["scorer"] = detail["scorer"]
        out["scores"] = [_score(s) for s in detail["scores"]]
        out["seconds"] = round(float(detail["seconds"]), 6)
    return out


def chosen_index(result: Result) -> int | None:
    """The candidate whose text a reply returns: the first whose answer won, else the
    first candidate (None when there is none)."""
    for i, c in enumerate(result.candidates):
        if result.answer is not None and c.answer == result.answer:
            return i
    return 0 if result.candidates else None


def decision_record(result: Result) -> dict[str, Any]:
    """What the strategy decided, as the trace's last record."""
    return {
        "type": "decision",
        "answer": result.answer,
        "votes": dict(result.votes),
        "chosen": chosen_index(result),
        "candidates": [
            {"answer": c.answer, "score": c.score, "finish_reason": c.finish_reason}
            for c in result.candidates
        ],
        "meta": _jsonable(result.meta),
        "usage": result.usage.to_dict(),
        "seconds": round(result.seconds, 6),
    }


def trace_records(
    ident: str,
    request: Mapping[str, Any],
    messages: Sequence[Message],
    ledger: Ledger,
    end: Result | tuple[int, str, Usage],
) -> list[dict[str, Any]]:
    """A request's whole trace: ``request`` holds what was asked (model, strategy,
    options, budget, max_tokens, seed), ``end`` the strategy's result or the failure
    (HTTP status, message, what was spent)."""
    head = {"type": "request", "id": ident, "created": int(time.time()),
            **_jsonable(request), "messages": [m.to_dict() for m in messages]}  # fmt: skip
    records = [head] + [call_record(i, e) for i, e in enumerate(ledger.events)]
    if isinstance(end, Result):
        records.append(decision_record(end))
    else:
        status, message, usage = end
        records.append(
            {"type": "error", "status": status, "message": message, "usage": usage.to_dict()}
        )
    return records


class TraceWriter:
    """Writes each traced request to ``directory/<id>.jsonl`` (the directory is made
    when missing; one that cannot be made is a ``ConfigError``)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--trace: cannot make the directory {self.directory}: {e}") from e

    def write(self, ident: str, records: Sequence[Mapping[str, Any]]) -> Path:
        """The trace as JSON lines, written whole through a temporary file and a rename,
        so a reader never sees half of one."""
        path = self.directory / f"{ident}.jsonl"
        part = path.with_suffix(".jsonl.part")
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        part.write_text(lines, encoding="utf-8")
        part.replace(path)
        return path
