"""A run store as JSON lines, and back: to share a bank of samples or keep it in git.

The first line is a header ``{"format": ..., "config": {...}}``; every other line is
one record with the store's columns, and, when the store has features of the
record's samples (``RunStore.put_features``), a ``features`` key: per sample index (as
text) its features by name. A record without it has none, as every archive written
before features existed reads; a reader that does not know the key ignores it, so the
header's format is unchanged. Likewise a store's projected hidden states
(``RunStore.put_hidden``) travel as a record's ``hidden`` key, per sample index the
base64 of its float16 bytes, with the projection in the header's ``hidden_projection``.
A name ending in ``.gz`` is gzip-compressed.
Importing into an existing store checks the configuration as a resume does and adds
only the records it lacks (an error record there is replaced by a finished one), so
importing a newer export of a growing run into an older copy brings it up to date;
features and hidden states are added for the samples that have none in the store.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ponder.core.errors import ConfigError
from ponder.core.types import Candidate, Usage
from ponder.runs.store import FORMAT, Record, RunStore, SampleFeatures
from ponder.verifiers.hidden import Projection, SampleHidden

SampleHiddens = Mapping[int, SampleHidden]

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


def export_store(
    store_path: str | Path,
    out: str | Path,
    *,
    include_errors: bool = False,
    exclude: Collection[str] = (),
) -> int:
    """Write the store at ``store_path`` to ``out``; returns the records written.

    Error records are left out unless ``include_errors`` (they are retried on resume
    anyway), and so are the problems in ``exclude`` (say, to fit a verifier on the
    other problems of a bank). The file is written beside ``out`` and renamed, so a
    reader never sees half of it.
    """
    out = Path(out)
    with RunStore(store_path, create=False) as store:
        config = store.config()
        if config is None:
            raise ConfigError(f"{store_path} holds no run yet (no configuration)")
        records = store.records(include_errors=include_errors)
        problems = store.problem_fingerprints()
        if exclude:
            unknown = set(exclude) - {r.problem_id for r in records} - set(problems)
            if unknown:
                raise ConfigError(
                    f"{len(unknown)} excluded problems are not in {store_path}, e.g. "
                    f"{sorted(unknown)[0]!r}"
                )
            records = [r for r in records if r.problem_id not in exclude]
            problems = {k: v for k, v in problems.items() if k not in exclude}
        features = store.features()
        projection = store.hidden_projection()
        hidden = store.hidden()
    write_archive(out, config, problems, records, features, hidden, projection)
    return len(records)


def write_archive(
    out: str | Path,
    config: dict[str, Any],
    problems: dict[str, dict[str, str]],
    records: list[Record],
    features: Mapping[str, SampleFeatures] | None = None,
    hidden: Mapping[str, SampleHiddens] | None = None,
    projection: Projection | None = None,
) -> None:
    """Write an archive of ``records`` under a header of the run's configuration and its
    problems' fingerprints, each record with its samples' ``features`` and ``hidden``
    states (made with ``projection``) if it has any, beside ``out`` and renamed into
    place."""
    if hidden and projection is None:
        raise ConfigError("hidden states cannot be archived without their projection")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part" + (".gz" if out.suffix == ".gz" else ""))
    header: dict[str, Any] = {"format": ARCHIVE_FORMAT, "config": config}
    if problems:
        header["problems"] = problems
    if hidden and projection is not None:
        header["hidden_projection"] = projection.spec()
    with _open(tmp, "w") as f:
        f.write(json.dumps(header, sort_keys=True))
        f.write("\n")
        for record in records:
            line = _record_dict(record)
            if features and (own := features.get(record.problem_id)):
                line["features"] = {str(i): dict(values) for i, values in own.items()}
            if hidden and (vectors := hidden.get(record.problem_id)):
                line["hidden"] = {
                    str(i): base64.b64encode(v.to_bytes()).decode("ascii")
                    for i, v in vectors.items()
                }
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


def _hidden_from(d: dict[str, Any], projection: Projection | None) -> dict[int, SampleHidden]:
    raw = d.get("hidden") or {}
    if not isinstance(raw, dict):
        raise TypeError("hidden must be a mapping of sample index to base64 text")
    if not raw:
        return {}
    if projection is None:
        raise ValueError("hidden states, but the header has no hidden_projection")
    out = {}
    for i, text in raw.items():
        try:
            data = base64.b64decode(text, validate=True)
        except binascii.Error as e:
            raise ValueError(f"sample {i}'s hidden states are not base64 ({e})") from e
        out[int(i)] = SampleHidden.from_bytes(data, projection.dim)
    return out


@dataclass(frozen=True)
class ArchiveLine:
    """One record of an archive with its line number and its samples' features and
    hidden states."""

    number: int
    record: Record
    features: dict[int, dict[str, float]]
    hidden: dict[int, SampleHidden]


def _open_archive(
    archive: str | Path,
) -> tuple[dict[str, Any], dict[str, Any], Projection | None, Iterator[ArchiveLine]]:
    """An archive's configuration, problem fingerprints and hidden-state projection (its
    header), and its records read lazily; a malformed header or record raises
    ``ConfigError`` naming the file and line."""
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
    spec = first[1].get("hidden_projection")
    if spec is not None and not isinstance(spec, dict):
        raise ConfigError(f"{path}: the header's hidden_projection is not a mapping")
    try:
        projection = None if spec is None else Projection.from_spec(spec)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e

    def records() -> Iterator[ArchiveLine]:
        for number, d in lines:
            try:
                yield ArchiveLine(
                    number, _record_from(d), _features_from(d), _hidden_from(d, projection)
                )
            except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as e:
                raise ConfigError(f"{path}:{number}: not a record ({e!r})") from e

    return config, problems, projection, records()


def read_archive(archive: str | Path) -> tuple[dict[str, Any], dict[str, Any], list[Record]]:
    """The configuration, problem fingerprints and records of an archive."""
    config, problems, _, lines = _open_archive(archive)
    return config, problems, [line.record for line in lines]


def import_store(archive: str | Path, store_path: str | Path) -> ImportSummary:
    """Add the records of ``archive`` (from ``export_store``) to the store at ``store_path``.

    A new store takes the archive's configuration and its problems' fingerprints; an
    existing one must match both.
    Features and hidden states are added for the samples that have none in the store
    (hidden states made with another projection than the store's raise ``ConfigError``).
    A malformed line raises ``ConfigError`` naming it; records before it are kept.
    """
    config, problems, projection, lines = _open_archive(archive)
    read = added = 0
    with RunStore(store_path) as store:
        store.init_or_check(config)
        store.add_problem_fingerprints(problems)
        featured = store.featured_samples()
        with_hidden = store.hidden_samples()
        for line in lines:
            pid = line.record.problem_id
            read += 1
            added += int(store.put(line.record))
            new = {i: v for i, v in line.features.items() if (pid, i) not in featured}
            if new:
                store.put_features(pid, new)
            vectors = {i: v for i, v in line.hidden.items() if (pid, i) not in with_hidden}
            if vectors:
                assert projection is not None  # _hidden_from read none without it
                store.put_hidden(pid, vectors, projection)
    return ImportSummary(read=read, added=added)
