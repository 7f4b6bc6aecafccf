"""Tasks backed by JSONL files: the shared loader, the math prompt, and ``JsonlTask``.

A JSONL file holds one JSON object per line. ``RecordTask`` keeps the problems a task
reads once and what they were read from; ``field_problems`` maps records onto problems
through field names, for ``JsonlTask`` here and the free-form tasks
(``ponder.tasks.freeform``). The benchmark tasks (GSM8K, MATH-500, AIME) build on
``MathTask`` below through ``ponder.tasks.hub``, with their own field mapping and a
Hugging Face hub fallback.
"""

from __future__ import annotations

import gzip
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ponder.core.errors import ConfigError
from ponder.core.types import Grade, Message, Problem
from ponder.grading.answers import canonical_answer, extract_answer, grade_answer
from ponder.tasks.identity import (
    DataIdentity,
    file_sha256,
    id_prefix,
    problems_identity,
    records_sha256,
    resolve_split,
)

__all__ = [
    "FileTask",
    "JsonlTask",
    "LoadedData",
    "MathTask",
    "RecordTask",
    "answer_string",
    "field_problems",
    "find_data_file",
    "load_file",
    "load_records",
    "read_jsonl",
    "require_field",
]

Record = Mapping[str, Any]

SYSTEM_PROMPT = "You are a careful mathematician. Reason briefly and accurately."
USER_TEMPLATE = (
    "Solve the problem step by step, then put the final answer in \\boxed{{}}.\n\n"
    "Problem: {question}"
)


def find_data_file(data: str | Path, split: str = "test") -> Path:
    """The JSONL file ``data`` names: the file itself, or ``<data>/<split>.jsonl``."""
    path = Path(data).expanduser()
    if path.is_dir():
        candidate = path / f"{split}.jsonl"
        if not candidate.is_file():
            present = sorted(p.name for p in path.glob("*.jsonl"))
            raise ConfigError(
                f"{path} has no {split}.jsonl (JSONL files there: {present or 'none'})"
            )
        return candidate
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    return path


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def read_jsonl(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """The JSON objects in a JSONL file, each with its location ``"<path>:<line>"``.

    Blank lines are skipped; a file ending in ``.gz`` is read through gzip. A line that
    is not a JSON object raises ``ConfigError`` naming the file and the line.
    """
    path = Path(path)
    records: list[tuple[str, dict[str, Any]]] = []
    try:
        with _open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise ConfigError(
                        f"{where}: expected a JSON object, got {type(record).__name__}"
                    )
                records.append((where, record))
    except (OSError, EOFError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    return records


@dataclass(frozen=True)
class LoadedData:
    """A benchmark's records with their locations, and what they were read from: the
    split (None when nothing names one), the content hash and the source."""

    records: Sequence[tuple[str, Record]]
    split: str | None
    sha256: str
    source: str

    def identity(self, task: str) -> DataIdentity:
        return DataIdentity(task=task, split=self.split, sha256=self.sha256, source=self.source)


def load_file(path: Path, split: str | None) -> LoadedData:
    """The records of one JSONL file, its split resolved (``ponder.tasks.identity``) and
    its bytes hashed."""
    records = read_jsonl(path)
    resolved = resolve_split(split, path, (r for _, r in records), where=str(path))
    return LoadedData(records, resolved, file_sha256(path), str(path))


def load_records(
    data: str | Path | None,
    split: str | None,
    *,
    task: str,
    hub_path: str,
    hub_config: str | None = None,
    hub_splits: Mapping[str, str] | None = None,
    fields: Iterable[str] = (),
) -> LoadedData:
    """Records of a benchmark, with their locations: from ``data`` or the Hugging Face hub.

    ``data`` is a JSONL file or a folder holding ``<split>.jsonl`` (``test.jsonl`` when no
    split is given); the split of a file is resolved as ``ponder.tasks.identity`` says.
    Without ``data`` the records come from ``datasets.load_dataset(hub_path, hub_config)``,
    whose split is ``hub_splits[split]`` (default: the same name; ``split`` None reads
    ``test``); when that fails (``datasets`` not installed, offline) the ``ConfigError``
    says how to pass a file instead.
    """
    if data is not None:
        return load_file(find_data_file(data, split or "test"), split)
    split = split or "test"
    hub_split = (hub_splits or {}).get(split, split)
    advice = (
        f"pass --data PATH: a JSONL file (or a folder with {split}.jsonl) with the "
        f"fields {', '.join(fields)}"
    )
    try:
        import datasets
    except ImportError as exc:
        raise ConfigError(
            f"{task}: no data given and the 'datasets' package is not installed to fetch "
            f"{hub_path} from the Hugging Face hub; {advice}"
        ) from exc
    try:
        rows = datasets.load_dataset(hub_path, hub_config, split=hub_split)
        hub_records = [dict(row) for row in rows]
    except Exception as exc:  # offline, gated, renamed: any failure means "use a file"
        raise ConfigError(
            f"{task}: could not load {hub_path} (split {hub_split!r}) from the Hugging Face "
            f"hub ({type(exc).__name__}: {exc}); {advice}"
        ) from exc
    return LoadedData(
        [(f"{hub_path} {hub_split} row {i}", r) for i, r in enumerate(hub_records)],
        split,
        records_sha256(hub_records),
        f"hub:{hub_path}:{hub_split}",
    )


def require_field(record: Record, field: str, where: str) -> Any:
    """``record[field]``, or a ``ConfigError`` at ``where`` listing the fields present."""
    if field not in record or record[field] is None:
        present = ", ".join(sorted(record)) or "none"
        raise ConfigError(f"{where}: missing field {field!r} (fields present: {present})")
    return record[field]


class RecordTask(ABC):
    """Base of tasks that read their problems once and keep them, with what they were
    read from.

    Subclasses provide ``_load_all``, reading their data through ``_read`` (which keeps
    what was read: ``data_identity``, and ``split`` as resolved).
    """

    def __init__(self, name: str, split: str | None = None) -> None:
        self._name = name
        self.split = split
        self._problems: list[Problem] | None = None
        self._identity: DataIdentity | None = None

    @property
    def name(self) -> str:
        return self._name

    @abstractmethod
    def _load_all(self) -> list[Problem]:
        """Every problem, in file order."""

    def _read(self, loaded: LoadedData) -> Sequence[tuple[str, Record]]:
        """Keep what ``loaded`` was read from; its records."""
        self.split = loaded.split
        self._identity = loaded.identity(self.name)
        return loaded.records

    def data_identity(self) -> DataIdentity:
        """The task, split and content hash of the data the problems come from."""
        problems = self.load(None)
        # a subclass that does not read through ``_read``: hash its problems
        return self._identity or problems_identity(self.name, problems)

    def load(self, limit: int | None = None) -> list[Problem]:
        """The first ``limit`` problems in file order (all of them for None)."""
        if limit is not None and limit < 0:
            raise ConfigError(f"limit must be >= 0, got {limit}")
        if self._problems is None:
            self._problems = self._load_all()
        return list(self._problems if limit is None else self._problems[:limit])


def field_problems(
    records: Iterable[tuple[str, Record]],
    *,
    prefix: str,
    question_field: str,
    answer_field: str,
    id_field: str | None,
    references: Callable[[Any, str], tuple[str, ...]],
) -> list[tuple[Problem, tuple[str, ...]]]:
    """Problems from records through field names, each with its accepted answers.

    ``references(value, where)`` turns a record's answer field into the answers that
    count as correct (at least one); the first is the problem's reference answer.
    ``id_field`` None numbers the problems ``<prefix>-0000``, ... in record order. Other
    fields travel in ``Problem.meta``, except ``solution``, which would give the answer
    away to a strategy. A missing field raises ``ConfigError`` (``require_field``).
    """
    used = {question_field, answer_field, id_field, "solution"}
    problems: list[tuple[Problem, tuple[str, ...]]] = []
    for index, (where, record) in enumerate(records):
        question = require_field(record, question_field, where)
        refs = references(require_field(record, answer_field, where), where)
        if id_field is None:
            pid = f"{prefix}-{index:04d}"
        else:
            pid = str(require_field(record, id_field, where))
        meta = {k: v for k, v in record.items() if k not in used}
        problems.append((Problem(pid, str(question), refs[0], meta), refs))
    return problems


class FileTask(RecordTask):
    """A ``RecordTask`` reading one JSONL file (``find_data_file``) through field
    names (``field_problems``); without a path it has no problems."""

    def __init__(
        self,
        path: str | Path | None,
        question_field: str,
        answer_field: str,
        id_field: str | None,
        name: str,
        split: str | None,
    ) -> None:
        super().__init__(name, split)
        self.path = None if path is None else find_data_file(path, split or "test")
        self.question_field = question_field
        self.answer_field = answer_field
        self.id_field = id_field

    def _file_problems(
        self, references: Callable[[Any, str], tuple[str, ...]]
    ) -> list[tuple[Problem, tuple[str, ...]]]:
        """The file's problems with their accepted answers (see ``field_problems``)."""
        if self.path is None:
            raise ConfigError(f"task {self.name!r} was made without a data file")
        records = self._read(load_file(self.path, self.split))
        return field_problems(
            records,
            prefix=id_prefix(self.name, self.split),
            question_field=self.question_field,
            answer_field=self.answer_field,
            id_field=self.id_field,
            references=references,
        )


class MathTask(RecordTask):
    """Base of tasks whose answers are graded as math: the prompt, extraction, grading.

    Subclasses provide ``_load_all`` as ``RecordTask`` says; problems are loaded once
    and kept.
    """

    def messages(self, problem: Problem) -> tuple[Message, ...]:
        return (
            Message("system", SYSTEM_PROMPT),
            Message("user", USER_TEMPLATE.format(question=problem.question.strip())),
        )

    def extract(self, text: str) -> str | None:
        return extract_answer(text)

    def grade_status(self, predicted: str | None, problem: Problem) -> Grade:
        """The grade of ``predicted``, math-verify's errors and timeouts included."""
        return grade_answer(predicted, problem.answer)

    def is_correct(self, predicted: str | None, problem: Problem) -> bool:
        return self.grade_status(predicted, problem).correct

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r})"


def answer_string(answer: Any) -> str:
    """A reference answer as a string: ``12.0`` -> ``"12"``, strings stripped, and a
    GSM8K-style worked solution ending in ``#### 12`` -> ``"12"``."""
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    text = str(answer).strip()
    _, sep, tail = text.rpartition("####")
    if sep and tail.strip():
        return canonical_answer(tail)
    return text


class JsonlTask(FileTask, MathTask):
    """Any JSONL file of questions and reference answers, graded as math.

    ``id_field`` None numbers the problems ``<name>-<split>-0000``, ... when the data
    names its split (``split``, the file name, or the records' ``split`` field; see
    ``ponder.tasks.identity``), else ``<name>-0000``, ``<name>-0001``, ...
    Other fields travel in ``Problem.meta``, except ``solution``, which would give the
    answer away to a strategy.
    """

    def __init__(
        self,
        path: str | Path,
        question_field: str = "question",
        answer_field: str = "answer",
        id_field: str | None = None,
        name: str = "jsonl",
        split: str | None = None,
    ) -> None:
        super().__init__(path, question_field, answer_field, id_field, name, split)

    def _load_all(self) -> list[Problem]:
        loaded = self._file_problems(lambda answer, _where: (answer_string(answer),))
        return [problem for problem, _ in loaded]

    def __repr__(self) -> str:
        return f"JsonlTask({str(self.path)!r}, name={self.name!r})"
