"""Bring a run written before ponder recorded its data up to date (``ponder migrate``).

Such a run (a store or an exported archive) has no ``data`` in its configuration, no
fingerprints of its problems, and possibly ids that do not name its split (GSM8K runs on
the train file were numbered ``gsm8k-test-NNNN``). Migration reads the task's data, finds
each record's problem by its question text (the record keeps it), renames the record to
that problem's id, and records the data's identity, the problems' fingerprints and the
model's sha256 (also in the description of the bank a replay run drew from, which was
of the same data and model). Nothing else of a record changes; a record whose question
is not in the data is refused, so a run can only be migrated onto the data it ran on.

The prompt fingerprint is the prompt the task renders now: migrate a run only with a
ponder whose prompt for the task is the one the run sampled from.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.task import Task
from ponder.core.types import Problem
from ponder.runs.archive import read_archive, write_archive
from ponder.runs.store import Record, RunStore
from ponder.tasks.identity import data_identity, problem_fingerprint

__all__ = ["MigrationSummary", "is_archive", "migrate_run"]


@dataclass(frozen=True)
class MigrationSummary:
    records: int
    renamed: int
    data: dict[str, Any]
    model_sha256: str


def is_archive(path: str | Path) -> bool:
    """An exported run (``.jsonl`` or ``.jsonl.gz``), as opposed to a store."""
    name = Path(path).name
    return name.endswith(".jsonl") or name.endswith(".jsonl.gz")


def _read(path: Path) -> tuple[dict[str, Any], list[Record]]:
    if is_archive(path):
        config, _, records = read_archive(path)
        return config, records
    with RunStore(path, create=False) as store:
        stored = store.config()
        records = store.records(include_errors=True)
    if stored is None:
        raise ConfigError(f"{path} holds no run yet (no configuration)")
    return stored, records


def _trailing_number(problem_id: str) -> int | None:
    tail = problem_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _match(record: Record, by_question: dict[str, list[tuple[int, Problem]]]) -> Problem:
    """The problem a record ran on: the one with its question; among several with the
    same question, the one of the same id, else of the same position."""
    found = by_question.get(record.question, [])
    if len(found) == 1:
        return found[0][1]
    for _, p in found:
        if p.id == record.problem_id:
            return p
    number = _trailing_number(record.problem_id)
    for position, p in found:
        if position == number:
            return p
    if not found:
        raise ConfigError(
            f"record {record.problem_id!r}: its question is not in the task's data, so the "
            "run did not run on this data; pass the data it ran on (--data, --split)"
        )
    raise ConfigError(
        f"record {record.problem_id!r}: its question appears {len(found)} times in the "
        "data and neither id nor position tells which one it ran on"
    )


def migrate_run(
    source: str | Path,
    task: Task,
    *,
    model_sha256: str | None = None,
    out: str | Path | None = None,
) -> MigrationSummary:
    """Migrate the run at ``source`` (a store, or an archive) onto ``task``'s data and
    write it to ``out`` (default: in place), in the same form. See the module doc.

    ``model_sha256`` is the sha256 of the run's model file; None takes the catalogue's,
    for a run whose model is a bundled one."""
    source = Path(source)
    out = source if out is None else Path(out)
    if is_archive(source) != is_archive(out):
        raise ConfigError("migrate writes the form it reads: archive to archive, store to store")
    config, records = _read(source)
    if config.get("task") != task.name:
        raise ConfigError(f"{source} is a run of task {config.get('task')!r}, not {task.name!r}")
    if model_sha256 is None:
        model_sha256 = _bundled_sha256(str(config.get("model")))
    by_question: dict[str, list[tuple[int, Problem]]] = defaultdict(list)
    for position, p in enumerate(task.load(None)):
        by_question[p.question].append((position, p))
    migrated: list[Record] = []
    fingerprints: dict[str, dict[str, str]] = {}
    for record in records:
        problem = _match(record, by_question)
        if problem.id in fingerprints:
            raise ConfigError(f"two records of {source} ran on the same problem {problem.id!r}")
        fingerprints[problem.id] = problem_fingerprint(task, problem)
        migrated.append(dataclasses.replace(record, problem_id=problem.id))
    renamed = sum(r.problem_id != m.problem_id for r, m in zip(records, migrated, strict=True))
    identity = data_identity(task)
    config = dict(config)
    config["data"] = identity.to_config()
    config["data_source"] = identity.source
    config["model_sha256"] = model_sha256
    replay = (config.get("extra") or {}).get("replay")
    if isinstance(replay, dict):
        # a replay serves only a bank of the same data and model (which replay checks
        # now); its description records them as a replay run records them
        config["extra"] = {
            **config["extra"],
            "replay": {**replay, "data": identity.to_config(), "model_sha256": model_sha256},
        }
    config["migrated"] = {
        "on": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "renamed": renamed,
    }
    if is_archive(out):
        write_archive(out, config, fingerprints, migrated)
    else:
        _write_store(out, config, fingerprints, migrated, replace=out == source)
    return MigrationSummary(len(migrated), renamed, identity.to_config(), model_sha256)


def _bundled_sha256(model: str) -> str:
    from ponder.engines.models import CATALOGUE

    if model not in CATALOGUE:
        raise ConfigError(
            f"the run's model {model!r} is not a bundled model: pass its GGUF file "
            "(--model-file) to hash"
        )
    return CATALOGUE[model].sha256


def _write_store(
    out: Path,
    config: dict[str, Any],
    fingerprints: dict[str, dict[str, str]],
    records: list[Record],
    *,
    replace: bool,
) -> None:
    if out.exists() and not replace:
        raise ConfigError(f"{out} exists; migrate into a new file, or in place")
    tmp = out.with_name(out.name + ".migrating")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    with RunStore(tmp) as store:
        store.init_or_check(config)
        store.add_problem_fingerprints(fingerprints)
        for record in records:
            store.put(record)
    for suffix in ("-wal", "-shm"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    tmp.replace(out)
