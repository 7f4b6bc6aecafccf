"""A run's records in one SQLite file, written one problem at a time so runs resume.

The file holds two tables. ``meta`` is key/value text: the run configuration (JSON)
and a format marker. ``records`` has one row per problem, keyed by the problem id.
A third, ``features``, is made by the first ``put_features``: per sample (problem id
and the sample's index among its record's candidates) a JSON object of named numbers
computed from the sample afterwards (``ponder bank features``); stores without it read
as having none. ``put`` writes a record's ``features`` (computed while its samples
were drawn, ``ponder eval --features``) with its row, in the same transaction.
A fourth, ``hidden``, is made by the first ``put_hidden``: per sample
its final-layer hidden states under a fixed random projection, as float16 bytes
(``ponder.verifiers.hidden``), with the projection's sizes and seed in ``meta`` under
``hidden_projection``; vectors of another projection are refused.
Each row is committed in its own transaction as soon as its problem finishes, in WAL
mode, so killing the process loses at most the problems still in flight and can
never leave half a row or two rows for one problem.

A finished row is never overwritten; a row that records an error is replaced when the
problem is tried again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.types import GRADE_STATUSES, Candidate, Grade, Usage
from ponder.verifiers.hidden import Projection, SampleHidden

FORMAT = "ponder-run-store"
SCHEMA_VERSION = 2

_FEATURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    problem_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (problem_id, sample_index)
)
"""

_HIDDEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS hidden (
    problem_id TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (problem_id, sample_index)
)
"""

SampleFeatures = Mapping[int, Mapping[str, float]]
"""One problem's features: per sample index, the values by name."""

# Keys of the stored configuration that describe the run but do not change its
# results, so resuming under a different value is allowed.
INFORMATIONAL_KEYS = frozenset({"created", "ponder_version", "data_source", "migrated"})

# What a store written before runs recorded their data lacks, and how to add it.
MIGRATE_HINT = (
    "a store or bank written before ponder recorded its data and model (no 'data' key) "
    "can be brought up to date with `ponder migrate`"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    problem_id TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    question TEXT NOT NULL,
    reference TEXT,
    answer TEXT,
    correct INTEGER NOT NULL,
    votes TEXT NOT NULL,
    candidates TEXT NOT NULL,
    answer_correct TEXT NOT NULL,
    usage TEXT NOT NULL,
    seconds REAL NOT NULL,
    error TEXT,
    finished_at REAL NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
"""

_COLUMNS = (
    "problem_id",
    "idx",
    "question",
    "reference",
    "answer",
    "correct",
    "votes",
    "candidates",
    "answer_correct",
    "usage",
    "seconds",
    "error",
    "finished_at",
    "meta",
)


@dataclass(frozen=True)
class Record:
    """The outcome of one problem.

    ``answer_correct`` grades every distinct non-None answer among the candidates (and
    the final answer), so curves over subsets of samples never grade again.
    ``seconds`` is the strategy's wall time; ``error`` is ``"Type: message"`` when the
    problem failed, in which case the answer is None and it is retried on resume.
    ``meta`` is the strategy's own account (``Result.meta``: why it stopped, the search
    tree, the chosen configuration), stored as JSON, and the runner's: the final
    answer's grade (``meta["grading_status"]``, read through ``grade``).

    ``features`` are per-sample features (by index in ``candidates``) that ``RunStore.put``
    writes to the store's ``features`` table with the row; they are not part of the row,
    so a record read back has none (``RunStore.features`` reads them). ``hidden`` are
    projected hidden states (by index, under ``projection``), written the same way to the
    ``hidden`` table (``RunStore.hidden`` reads them).
    """

    problem_id: str
    idx: int
    question: str
    reference: str | None
    answer: str | None
    correct: bool
    votes: Mapping[str, float] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()
    answer_correct: Mapping[str, bool] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    error: str | None = None
    finished_at: float = field(default_factory=time.time)
    meta: Mapping[str, Any] = field(default_factory=dict)
    features: SampleFeatures = field(default_factory=dict)
    hidden: Mapping[int, SampleHidden] = field(default_factory=dict)
    projection: Projection | None = None

    def __post_init__(self) -> None:
        if self.hidden and self.projection is None:
            raise ValueError("a record's hidden states need the projection they were made by")

    @property
    def ok(self) -> bool:
        """True when the problem finished without an error."""
        return self.error is None

    @property
    def grade(self) -> Grade:
        """The final answer's grade (``correct``, ``wrong``, ``error``, ``timeout``), from
        ``meta["grading_status"]``; a record written before grades were recorded reads
        as correct or wrong from ``correct``."""
        stored = self.meta.get("grading_status")
        if isinstance(stored, Mapping) and stored.get("status") in GRADE_STATUSES:
            return Grade.from_dict(stored)
        return Grade("correct" if self.correct else "wrong")

    def _row(self) -> tuple[Any, ...]:
        return (
            self.problem_id,
            self.idx,
            self.question,
            self.reference,
            self.answer,
            int(self.correct),
            json.dumps(dict(self.votes)),
            json.dumps([c.to_dict() for c in self.candidates]),
            json.dumps(dict(self.answer_correct)),
            json.dumps(self.usage.to_dict()),
            float(self.seconds),
            self.error,
            float(self.finished_at),
            json.dumps(dict(self.meta), default=_json_default),
        )

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> Record:
        d = dict(zip(_COLUMNS, row, strict=True))
        return cls(
            problem_id=str(d["problem_id"]),
            idx=int(d["idx"]),
            question=str(d["question"]),
            reference=d["reference"],
            answer=d["answer"],
            correct=bool(d["correct"]),
            votes={str(k): float(v) for k, v in json.loads(d["votes"]).items()},
            candidates=tuple(Candidate.from_dict(c) for c in json.loads(d["candidates"])),
            answer_correct={str(k): bool(v) for k, v in json.loads(d["answer_correct"]).items()},
            usage=Usage.from_dict(json.loads(d["usage"])),
            seconds=float(d["seconds"]),
            error=d["error"],
            finished_at=float(d["finished_at"]),
            meta=json.loads(d["meta"] or "{}"),
        )


def _json_default(value: Any) -> Any:
    """JSON for what ``json`` does not know: numpy scalars and arrays, sets, the rest as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def canonical_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as it reads back from JSON (tuples become lists, keys strings)."""
    out: dict[str, Any] = json.loads(json.dumps(dict(config), sort_keys=True))
    return out


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without what may differ on resume: an extended replay's bank
    (``--replay-extend`` serves the samples a live run draws, with the same seeds, so a
    live run and an extended one, from any bank, are the same run)."""
    extra = config.get("extra")
    if not isinstance(extra, dict) or not isinstance(replay := extra.get("replay"), dict):
        return config
    if not replay.get("extend"):
        return config
    rest = {k: v for k, v in extra.items() if k != "replay"}
    out = {k: v for k, v in config.items() if k != "extra"}
    return {**out, "extra": rest} if rest else out  # no "extra" key when it is empty


def _differences(stored: Any, given: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(given, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(given)):
            if not prefix and key in INFORMATIONAL_KEYS:
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored:
                out.append(f"{path}: not in the stored run, now {json.dumps(given[key])}")
            elif key not in given:
                out.append(f"{path}: stored {json.dumps(stored[key])}, now absent")
            else:
                out.extend(_differences(stored[key], given[key], path))
        return out
    if stored != given:
        return [f"{prefix or 'config'}: stored {json.dumps(stored)}, now {json.dumps(given)}"]
    return []


def _write_features(conn: sqlite3.Connection, problem_id: str, features: SampleFeatures) -> None:
    """Write one problem's sample features inside the caller's transaction."""
    conn.execute(_FEATURES_SCHEMA)
    conn.executemany(
        "INSERT OR REPLACE INTO features(problem_id, sample_index, data) VALUES (?, ?, ?)",
        [
            (problem_id, int(index), json.dumps(dict(values), sort_keys=True))
            for index, values in features.items()
        ],
    )


_WAL_WAIT_S = 30.0


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch a store to WAL, waiting for another connection that holds a write lock.

    The switch needs an exclusive lock; when another connection (a second process
    opening the same new store, say) holds a write lock, SQLite answers "database is
    locked" at once instead of calling its busy handler, so the switch is retried here.
    """
    deadline = time.monotonic() + _WAL_WAIT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class RunStore:
    """One evaluation run on disk; see the module docstring.

    ``create=False`` refuses a path that does not exist yet (for readers such as the
    report). A file that is not a ponder run store raises ``ConfigError``.
    The store may be used from several threads; writes are serialised.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ConfigError(f"no run store at {self.path}")
        if self.path.is_dir():
            raise ConfigError(f"{self.path} is a directory, not a run store file")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open run store {self.path}: {e}") from e
        try:
            self._setup()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise ConfigError(
                f"{self.path} is not a readable ponder run store ({e}); "
                "pass a new file to start a run"
            ) from e
        except ConfigError:
            self._conn.close()
            raise

    def _setup(self) -> None:
        conn = self._conn
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise ConfigError(
                f"{self.path} is an SQLite file but not a ponder run store "
                f"(it has tables {', '.join(sorted(tables))}); pass a new file to start a run"
            )
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if row is None or row[0] != FORMAT:
                raise ConfigError(f"{self.path} is not a ponder run store (no format marker)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row is not None else 0
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} was written by a newer ponder (store schema {version}, "
                    f"this ponder reads up to {SCHEMA_VERSION})"
                )
            if version < 2:
                # schema 1 had no meta column; its records read as having empty meta
                with self._transaction():
                    columns = {r[1] for r in conn.execute("PRAGMA table_info(records)")}
                    if "meta" not in columns:
                        conn.execute(
                            "ALTER TABLE records ADD COLUMN meta TEXT NOT NULL DEFAULT '{}'"
                        )
                    conn.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
        # WAL: a commit is one append to the log, and a killed writer leaves the
        # database as of its last commit. NORMAL sync survives process crashes; only
        # an OS crash or power loss could drop the last few commits.
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        if "meta" not in tables:
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('format', ?), "
                    "('schema_version', ?)",
                    (FORMAT, str(SCHEMA_VERSION)),
                )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, serialised across threads; rolled back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- configuration -------------------------------------------------------------

    def config(self) -> dict[str, Any] | None:
        """The stored run configuration, or None before ``init_or_check``."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        if row is None:
            return None
        config: dict[str, Any] = json.loads(row[0])
        return config

    def init_or_check(self, config: Mapping[str, Any]) -> None:
        """Store ``config`` in a new store, or check it matches the stored one.

        Keys in ``INFORMATIONAL_KEYS`` (creation time, ponder version) may differ, and
        so may an extended replay's bank (a live run may resume as one, and back).
        A mismatch raises ``ConfigError`` naming every differing key.
        """
        given = canonical_config(config)
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='config'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('config', ?)",
                    (json.dumps(given, sort_keys=True),),
                )
                return
        stored = json.loads(row[0])
        diffs = _differences(_comparable(stored), _comparable(given))
        if any(d.startswith("data") for d in diffs):
            # where each side's data was read from, which the hashes alone do not say
            diffs.append(
                f"(the stored run read {stored.get('data_source') or 'unrecorded data'}, "
                f"this one {given.get('data_source') or 'unrecorded data'})"
            )
        if diffs:
            raise ConfigError(
                f"run store {self.path} holds a run with a different configuration:\n  "
                + "\n  ".join(diffs)
                + "\nTo start a new run, pass a new file as --out; to resume this one, "
                "use the same configuration."
                + ("" if "data" in stored else f"\nNote: {MIGRATE_HINT}.")
            )

    def problem_fingerprints(self) -> dict[str, dict[str, str]]:
        """Per problem id the run has seen, the sha256 of its question and prompt."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='problems'").fetchone()
        if row is None:
            return {}
        out: dict[str, dict[str, str]] = json.loads(row[0])
        return out

    def add_problem_fingerprints(self, fingerprints: Mapping[str, Mapping[str, str]]) -> None:
        """Record the fingerprints of the problems a run is given, refusing (with both
        descriptions) a problem id the store knows with another question or prompt."""
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='problems'").fetchone()
            known: dict[str, dict[str, str]] = json.loads(row[0]) if row is not None else {}
            clashes = [
                f"{pid}: {what} sha256 stored {known[pid].get(what)}, now {fp.get(what)}"
                for pid, fp in fingerprints.items()
                if pid in known
                for what in ("question", "prompt")
                if known[pid].get(what) != fp.get(what)
            ]
            if clashes:
                shown = "\n  ".join(clashes[:5]) + ("\n  ..." if len(clashes) > 5 else "")
                raise ConfigError(
                    f"run store {self.path} ran problems of the same ids on other data or "
                    f"with another prompt ({len(clashes)} differences):\n  {shown}\n"
                    "To start a new run, pass a new file as --out."
                )
            known.update({pid: dict(fp) for pid, fp in fingerprints.items()})
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('problems', ?)",
                (json.dumps(known, sort_keys=True),),
            )

    # -- records ---------------------------------------------------------------------

    def put(self, record: Record) -> bool:
        """Write one record, and its ``features`` and ``hidden`` states if any, in one
        transaction.

        Replaces an earlier error record of the same problem; never replaces a finished
        one (returns False and writes nothing in that case, features included).
        """
        placeholders = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS[1:])
        with self._transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO records({', '.join(_COLUMNS)}) VALUES ({placeholders}) "
                f"ON CONFLICT(problem_id) DO UPDATE SET {updates} "
                "WHERE records.error IS NOT NULL",
                record._row(),
            )
            written = cur.rowcount > 0
            if written and record.features:
                _write_features(conn, record.problem_id, record.features)
            if written and record.hidden and record.projection is not None:
                self._write_hidden(conn, record.problem_id, record.hidden, record.projection)
            return written

    def done_ids(self) -> set[str]:
        """Ids of problems that finished without an error."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT problem_id FROM records WHERE error IS NULL"
            ).fetchall()
        return {str(r[0]) for r in rows}

    def records(self, *, include_errors: bool = True) -> list[Record]:
        """All records in problem order (``idx``, then id)."""
        where = "" if include_errors else " WHERE error IS NULL"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM records{where} ORDER BY idx, problem_id"
            ).fetchall()
        return [Record._from_row(r) for r in rows]

    def get(self, problem_id: str) -> Record | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM records WHERE problem_id=?", (problem_id,)
            ).fetchone()
        return None if row is None else Record._from_row(row)

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM records").fetchone()
        return int(count)

    def error_count(self) -> int:
        with self._lock:
            (count,) = self._conn.execute(
                "SELECT COUNT(*) FROM records WHERE error IS NOT NULL"
            ).fetchone()
        return int(count)

    # -- per-sample features -----------------------------------------------------------

    def put_features(self, problem_id: str, features: SampleFeatures) -> None:
        """Write the features of some samples of one problem in one transaction,
        replacing what those samples had (NaN is kept, as JSON's ``NaN``)."""
        with self._transaction() as conn:
            _write_features(conn, problem_id, features)

    def features(self, problem_id: str | None = None) -> dict[str, dict[int, dict[str, float]]]:
        """The stored features per problem id (one problem's, or all), per sample index."""
        where, params = ("", ()) if problem_id is None else (" WHERE problem_id=?", (problem_id,))
        with self._lock:
            if not self._has_features():
                return {}
            rows = self._conn.execute(
                "SELECT problem_id, sample_index, data FROM features"
                f"{where} ORDER BY problem_id, sample_index",
                params,
            ).fetchall()
        out: dict[str, dict[int, dict[str, float]]] = {}
        for pid, index, data in rows:
            values = {str(k): float(v) for k, v in json.loads(data).items()}
            out.setdefault(str(pid), {})[int(index)] = values
        return out

    def featured_samples(self) -> set[tuple[str, int]]:
        """``(problem id, sample index)`` of every sample that has features."""
        with self._lock:
            if not self._has_features():
                return set()
            rows = self._conn.execute("SELECT problem_id, sample_index FROM features").fetchall()
        return {(str(pid), int(index)) for pid, index in rows}

    def _has_features(self) -> bool:
        return self._has_table("features")

    def _has_table(self, name: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).fetchone()
        return row is not None

    # -- per-sample hidden states ------------------------------------------------------

    def put_hidden(
        self, problem_id: str, hidden: Mapping[int, SampleHidden], projection: Projection
    ) -> None:
        """Write the projected hidden states of some samples of one problem in one
        transaction, replacing what those samples had. The first write records
        ``projection``; a later one under another projection raises ``ConfigError``."""
        with self._transaction() as conn:
            self._write_hidden(conn, problem_id, hidden, projection)

    def _write_hidden(
        self,
        conn: sqlite3.Connection,
        problem_id: str,
        hidden: Mapping[int, SampleHidden],
        projection: Projection,
    ) -> None:
        """``put_hidden`` inside the caller's transaction."""
        for index, sample in hidden.items():
            if sample.last.shape != (projection.dim,) or sample.mean.shape != (projection.dim,):
                raise ConfigError(
                    f"sample {index} of {problem_id!r}: hidden states of shapes "
                    f"{sample.last.shape} and {sample.mean.shape}, not ({projection.dim},)"
                )
        spec = json.dumps(projection.spec(), sort_keys=True)
        row = conn.execute("SELECT value FROM meta WHERE key='hidden_projection'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta(key, value) VALUES ('hidden_projection', ?)", (spec,))
        elif json.loads(row[0]) != projection.spec():
            raise ConfigError(
                f"{self.path} holds hidden states under projection {row[0]}, not {spec}: "
                "vectors of two projections cannot be compared"
            )
        conn.execute(_HIDDEN_SCHEMA)
        conn.executemany(
            "INSERT OR REPLACE INTO hidden(problem_id, sample_index, data) VALUES (?, ?, ?)",
            [(problem_id, int(i), sample.to_bytes()) for i, sample in hidden.items()],
        )

    def hidden_projection(self) -> Projection | None:
        """The projection the stored hidden states were made with; None before any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key='hidden_projection'"
            ).fetchone()
        return None if row is None else Projection.from_spec(json.loads(row[0]))

    def hidden(self, problem_id: str | None = None) -> dict[str, dict[int, SampleHidden]]:
        """The stored hidden states per problem id (one problem's, or all), per sample
        index; ``ponder.verifiers.hidden.hidden_arrays`` stacks them into matrices."""
        projection = self.hidden_projection()
        where, params = ("", ()) if problem_id is None else (" WHERE problem_id=?", (problem_id,))
        with self._lock:
            if projection is None or not self._has_table("hidden"):
                return {}
            rows = self._conn.execute(
                f"SELECT problem_id, sample_index, data FROM hidden{where} "
                "ORDER BY problem_id, sample_index",
                params,
            ).fetchall()
        out: dict[str, dict[int, SampleHidden]] = {}
        for pid, index, data in rows:
            sample = SampleHidden.from_bytes(bytes(data), projection.dim)
            out.setdefault(str(pid), {})[int(index)] = sample
        return out

    def hidden_samples(self) -> set[tuple[str, int]]:
        """``(problem id, sample index)`` of every sample that has hidden states."""
        with self._lock:
            if not self._has_table("hidden"):
                return set()
            rows = self._conn.execute("SELECT problem_id, sample_index FROM hidden").fetchall()
        return {(str(pid), int(index)) for pid, index in rows}

    # -- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"
