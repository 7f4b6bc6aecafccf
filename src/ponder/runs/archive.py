"""A run store as JSON lines, and back: to share a bank of samples or keep it in git.

The first line is a header ``{"format": ..., "config": {...}}``; every other line is
one record with the store's columns, and, when the store has features of the
record's samples (``RunStore.put_features``), a ``features`` key: per sample index (as
text) its features by name. A record without it has none, as every archive written
before features existed reads; a reader that does not know the key ignores it, so the
header's format is unchanged. A name ending in ``.gz`` is gzip-compressed.
Importing into an existing store checks the configuration as a resume does and adds
only the records it lacks (an error record there is replaced by a finished one), so
importing a newer export of a growing run into an older copy brings it up to date;
features are added for the samples that have none in the store.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ponder.core.errors import ConfigError
from ponder.core.types import Candidate, Usage
from ponder.runs.store import FORMAT, Record, RunStore, SampleFeatures

ARCHIVE_FORMAT = FORMAT + "-jsonl"


@contextmanager
def _open(path: Path, mode: str) -> Iterator[IO[str]]:
    if path.suffix != ".gz":
        with path.open(mode, encoding="utf-8") as f:
            yield f
        return
    # neither a timestamp nor a file name in the gzip header: the same records export to
    # the same bytes, so saving an unchanged run again changes no committed file
    with (
        path.open(mode + "b") as raw,
        gzip.GzipFile(filename="", mode=mode + "b", fileobj=raw, mtime=0) as packed,
        io.TextIOWrapper(packed, encoding="utf-8") as text,
    ):
        yield text


def _record_dict(record: Record) -> dict[str, Any]:
    return {
        "problem_id": record.problem_id,
        "idx": record.idx,
        "question": record.question,
        "reference": record.reference,
        "answer": record.answer,
        "correct": record.correct,
        "votes": dict(record.votes),
        "candidates": [c.to_dict() for c in record.candidates],
        "answer_correct": dict(record.answer_correct),
        "usage": record.usage.to_dict(),
        "seconds": record.seconds,
        "error": record.error,
        "finished_at": record.finished_at,
        "meta": record.meta,
    }


def _record_from(d: dict[str, Any]) -> Record:
    return Record(
        problem_id=str(d["problem_id"]),
        idx=int(d["idx"]),
        question=str(d["question"]),
        reference=d.get("reference"),
        answer=d.get("answer"),
        correct=bool(d["correct"]),
        votes={str(k): float(v) for k, v in d.get("votes", {}).items()},
        candidates=tuple(Candidate.from_dict(c) for c in d.get("candidates", [])),
        answer_correct={str(k): bool(v) for k, v in d.get("answer_correct", {}).items()},
        usage=Usage.from_dict(d.get("usage", {})),
        seconds=float(d.get("seconds", 0.0)),
        error=d.get("error"),
        finished_at=float(d.get("finished_at", 0.0)),
        meta=d.get("meta") or {},
    )


def export_store(store_path: str | Path, out: str | Path, *, include_errors: bool = False) -> int:
    """Write the store at ``store_path`` to ``out``; returns the records written.

    Error records are left out unless ``include_errors`` (they are retried on resume
    anyway). The file is written beside ``out`` and renamed, so a reader never sees
    half of it.
    """
    out = Path(out)
    with RunStore(store_path, create=False) as store:
        config = store.config()
        if config is None:
            raise ConfigError(f"{store_path} holds no run yet (no configuration)")
        records = store.records(include_errors=include_errors)
        problems = store.problem_fingerprints()
        features = store.features()
    write_archive(out, config, problems, records, features)
    return len(records)


def write_archive(
    out: str | Path,
    config: dict[str, Any],
    problems: dict[str, dict[str, str]],
    records: list[Record],
    features: Mapping[str, SampleFeatures] | None = None,
) -> None:
    """Write an archive of ``records`` under a header of the run's configuration and its
    problems' fingerprints, each record with its samples' ``features`` if it has any,
    beside ``out`` and renamed into place."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part" + (".gz" if out.suffix == ".gz" else ""))
    header: dict[str, Any] = {"format": ARCHIVE_FORMAT, "config": config}
    if problems:
        header["problems"] = problems
    with _open(tmp, "w") as f:
        f.write(json.dumps(header, sort_keys=True))
        f.write("\n")
        for record in records:
            line = _record_dict(record)
            if features and (own := features.get(record.problem_id)):
                line["features"] = {str(i): dict(values) for i, values in own.items()}
            f.write(json.dumps(line, sort_keys=True, default=str))
            f.write("\n")
    tmp.replace(out)


@dataclass(frozen=True)
class ImportSummary:
    read: int
    added: int


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with _open(path, "r") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{path}:{number}: not JSON ({e.msg})") from e
                if not isinstance(value, dict):
                    raise ConfigError(f"{path}:{number}: expected a JSON object")
                yield number, value
    except (OSError, EOFError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e


def _features_from(d: dict[str, Any]) -> dict[int, dict[str, float]]:
    raw = d.get("features") or {}
    if not isinstance(raw, dict):
        raise TypeError("features must be a mapping of sample index to features")
    return {int(i): {str(k): float(v) for k, v in values.items()} for i, values in raw.items()}


ArchiveLine = tuple[int, Record, dict[int, dict[str, float]]]


def _open_archive(
    archive: str | Path,
) -> tuple[dict[str, Any], dict[str, Any], Iterator[ArchiveLine]]:
    """An archive's configuration and problem fingerprints (its header), and its records
    read lazily, each with its line number and its samples' features; a malformed header
    or record raises ``ConfigError`` naming the file and line."""
    path = Path(archive)
    if not path.is_file():
        raise ConfigError(f"no archive at {path}")
    lines = _lines(path)
    first = next(lines, None)
    if first is None or first[1].get("format") != ARCHIVE_FORMAT:
        raise ConfigError(f"{path} is not a ponder run archive (no {ARCHIVE_FORMAT} header)")
    config = first[1].get("config")
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the header has no configuration")
    problems = first[1].get("problems") or {}
    if not isinstance(problems, dict):
        raise ConfigError(f"{path}: the header's problems are not a mapping")

    def records() -> Iterator[ArchiveLine]:
        for number, d in lines:
            try:
                yield number, _record_from(d), _features_from(d)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise ConfigError(f"{path}:{number}: not a record ({e!r})") from e

    return config, problems, records()


def read_archive(archive: str | Path) -> tuple[dict[str, Any], dict[str, Any], list[Record]]:
    """The configuration, problem fingerprints and records of an archive."""
    config, problems, records = _open_archive(archive)
    return config, problems, [record for _, record, _ in records]


def import_store(archive: str | Path, store_path: str | Path) -> ImportSummary:
    """Add the records of ``archive`` (from ``export_store``) to the store at ``store_path``.

    A new store takes the archive's configuration and its problems' fingerprints; an
    existing one must match both.
    Features are added for the samples that have none in the store.
    A malformed line raises ``ConfigError`` naming it; records before it are kept.
    """
    config, problems, records = _open_archive(archive)
    read = added = 0
    with RunStore(store_path) as store:
        store.init_or_check(config)
        store.add_problem_fingerprints(problems)
        featured = store.featured_samples()
        for _, record, features in records:
            read += 1
            added += int(store.put(record))
            new = {i: v for i, v in features.items() if (record.problem_id, i) not in featured}
            if new:
                store.put_features(record.problem_id, new)
    return ImportSummary(read=read, added=added)
