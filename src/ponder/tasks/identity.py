"""Which data a run ran on: its split, a content hash of the data, a fingerprint per problem.

A run store records these so that a resume with other data is refused, and a replay
bank serves a problem's samples only to the same problem under the same prompt:

- ``DataIdentity``: the task, the split and the sha256 of the data (the file's bytes;
  for data from the hub or built into the task, of the records in order). A task that
  reads data says what it read through ``data_identity()``; for any other task the
  identity hashes its problems (``task.load()``).
- ``problem_fingerprint``: per problem, the sha256 of its question and of the messages
  the task renders for it (the prompt a sample was drawn from).

The split of a file comes from, in this order: an explicit ``split``, the file's name
(a ``train``/``test``/``validation``/``dev`` word in it, or its folder's name when that
is one of these words and the file name has none), the records' own ``split`` field
(one value for all). An explicit split that contradicts the file's name or field is
refused, never overridden.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ponder.core.errors import ConfigError
from ponder.core.types import Problem

__all__ = [
    "DataIdentity",
    "HasDataIdentity",
    "data_identity",
    "file_sha256",
    "id_prefix",
    "problem_fingerprint",
    "problems_identity",
    "records_sha256",
    "resolve_split",
    "split_from_name",
    "text_sha256",
]

# words that name a split in a file name, and the split each names
_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "test": "test",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "dev",
}


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (as stored: a ``.gz`` file is hashed compressed)."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    return h.hexdigest()


def records_sha256(records: Iterable[Mapping[str, Any]]) -> str:
    """The sha256 of records in order, each as canonical JSON (for data with no file)."""
    h = hashlib.sha256()
    for record in records:
        h.update(json.dumps(record, sort_keys=True, default=str).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _name_split(name: str) -> str | None:
    words = {_SPLIT_WORDS[w] for w in re.split(r"[^a-z]+", name.lower()) if w in _SPLIT_WORDS}
    return words.pop() if len(words) == 1 else None


def split_from_name(path: str | Path) -> str | None:
    """The split a file's name says (``train.jsonl``, ``gsm8k-test.jsonl.gz``), else its
    folder's when the folder is named for one (``train/data.jsonl``); None otherwise, and
    when a name holds two splits."""
    path = Path(path)
    stem = path.name.split(".")[0]
    # a folder counts only when its whole name is a split ("train/"): folder names such
    # as "tests" or "test_runs" say nothing of the data
    return _name_split(stem) or _SPLIT_WORDS.get(path.parent.name.lower())


def _field_split(records: Iterable[Mapping[str, Any]], where: str) -> str | None:
    values = {str(r["split"]) for r in records if r.get("split") is not None}
    if len(values) > 1:
        raise ConfigError(
            f"{where}: the records' 'split' field has several values "
            f"({', '.join(sorted(values))}); pass a file of one split"
        )
    return values.pop() if values else None


def resolve_split(
    explicit: str | None,
    path: str | Path | None,
    records: Iterable[Mapping[str, Any]],
    *,
    where: str,
) -> str | None:
    """The split of data read from ``path`` (see the module docstring); None when nothing
    names one. Raises ``ConfigError`` when an explicit split contradicts the data."""
    records = list(records)
    named = split_from_name(path) if path is not None else None
    field = _field_split(records, where)
    if explicit is not None:
        for source, value in (("file name", named), ("records' 'split' field", field)):
            if value is not None and value != explicit:
                raise ConfigError(
                    f"{where}: --split {explicit} but the {source} says {value!r}; "
                    "pass the file of that split, or the matching --split"
                )
        return explicit
    return named or field


@dataclass(frozen=True)
class DataIdentity:
    """What data a task's problems come from. ``sha256`` identifies the content;
    ``source`` (a path or a hub name) is informational: the same file elsewhere is the
    same data."""

    task: str
    split: str | None
    sha256: str
    source: str = ""

    def to_config(self) -> dict[str, Any]:
        """The part a run compares on resume."""
        return {"task": self.task, "split": self.split, "sha256": self.sha256}


@runtime_checkable
class HasDataIdentity(Protocol):
    """A task that knows which data it read (files, the hub)."""

    def data_identity(self) -> DataIdentity: ...


def problems_identity(task: str, problems: Iterable[Problem]) -> DataIdentity:
    """An identity from the problems themselves (id, question, reference, metadata), for
    a task whose data is not a file it read."""
    digest = records_sha256(
        {"id": p.id, "question": p.question, "answer": p.answer, "meta": dict(p.meta)}
        for p in problems
    )
    return DataIdentity(task=task, split=None, sha256=digest, source="problems")


def data_identity(task: Any) -> DataIdentity:
    """The identity of ``task``'s data: its own when it tells, else a hash of all its
    problems."""
    if isinstance(task, HasDataIdentity):
        return task.data_identity()
    return problems_identity(task.name, task.load(None))


def id_prefix(name: str, split: str | None) -> str:
    """What position-numbered problem ids start with: ``<name>-<split>``, or ``<name>``
    when no split is known."""
    return name if split is None else f"{name}-{split}"


def problem_fingerprint(task: Any, problem: Problem) -> dict[str, str]:
    """The sha256 of a problem's question and of the prompt ``task`` renders for it."""
    messages = [[m.role, m.content] for m in task.messages(problem)]
    return {
        "question": text_sha256(problem.question),
        "prompt": text_sha256(json.dumps(messages, ensure_ascii=False)),
    }
