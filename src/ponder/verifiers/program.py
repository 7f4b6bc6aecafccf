"""Model-written programs whose printed output is an answer (program-aided reasoning).

``program_in`` finds the program in a completion, ``execute_program`` runs it in a
``Sandbox`` and puts the execution on the context's ledger (kind ``execute``: no
tokens, the sandbox's seconds and isolation mode), and ``printed_answer`` reads the
answer from what it printed with the task's own extractor, so a printed ``18.0`` and a
chain of thought's ``\\boxed{18}`` vote together. ``ProgramOutcome`` says how one
program ended, with the reason when it gave no answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from ponder.core.sandbox import ExecResult, Sandbox
from ponder.core.types import Usage

if TYPE_CHECKING:
    from ponder.core.context import Context

__all__ = [
    "FLOAT_DIGITS",
    "ProgramOutcome",
    "execute_program",
    "printed_answer",
    "program_in",
]

Outcome = Literal[
    "ok", "error", "timeout", "memory", "output", "killed", "no_program", "no_output", "no_answer"
]

FLOAT_DIGITS = 6
"""A printed number with more decimals than this is rounded to this many first: binary
floating point prints ``0.1 + 0.2`` as ``0.30000000000000004`` and ``18 * 1.1 / 1.1``
as ``17.999999999999996``, which are the program's arithmetic noise, not its answer."""

_FENCE_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_LONG_DECIMAL_RE = re.compile(rf"-?\d+\.\d{{{FLOAT_DIGITS + 1},}}")


def program_in(text: str) -> str | None:
    """The program in a completion: the first fenced code block (```python, ```py or
    a bare fence; an unclosed fence runs to the end of the text), else None."""
    m = _FENCE_RE.search(text)
    if m is None:
        return None
    code = m.group(1)
    return code if code.strip() else None


def printed_answer(stdout: str, extract: Callable[[str], str | None]) -> str | None:
    """The answer a program printed, read by the task's extractor (``extract``), with a
    long decimal rounded to ``FLOAT_DIGITS`` places first (see there); None when it
    printed nothing or nothing the extractor takes for an answer."""
    if not stdout.strip():
        return None
    answer = extract(stdout)
    if answer is not None and _LONG_DECIMAL_RE.fullmatch(answer):
        try:
            rounded = Decimal(answer).quantize(Decimal(1).scaleb(-FLOAT_DIGITS))
        except InvalidOperation:  # too many digits to quantize: keep it as printed
            return answer
        return extract(format(rounded, "f"))
    return answer


@dataclass(frozen=True)
class ProgramOutcome:
    """How one program ended. ``status`` is the sandbox's (``ok``, ``error``,
    ``timeout``, ``memory``, ``output``, ``killed``) or ``no_program`` (the completion
    held no code), ``no_output`` (it ran but printed nothing) or ``no_answer`` (its
    output holds no answer); ``answer`` is set only for ``ok``; ``reason`` says why
    otherwise. ``output`` keeps the end of what it printed."""

    status: Outcome
    answer: str | None
    reason: str = ""
    output: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "answer": self.answer,
            "reason": self.reason,
            "output": self.output,
            "seconds": round(self.seconds, 4),
        }


OUTPUT_KEPT = 200
"""Characters of a program's output (its end) kept in ``ProgramOutcome.output``."""


async def execute_program(
    ctx: Context, sandbox: Sandbox, code: str | None, *, label: str = "program"
) -> ProgramOutcome:
    """Run ``code`` in ``sandbox``, record the execution on ``ctx.ledger`` (kind
    ``execute``, one execution, its wall seconds, the sandbox's isolation mode) and read
    the answer it printed with the task's extractor. A missing program is an outcome
    (``no_program``), not an error."""
    if code is None:
        return ProgramOutcome("no_program", None, "the completion holds no program")
    result: ExecResult = await sandbox.run(code)
    ctx.ledger.record(
        "execute", Usage(), result.seconds, label, executions=1, isolation=result.isolation
    )
    tail = result.stdout[-OUTPUT_KEPT:]
    if not result.ok:
        return ProgramOutcome(result.status, None, result.reason, tail, result.seconds)
    answer = printed_answer(result.stdout, ctx.extract)
    if answer is None:
        status: Outcome = "no_output" if not result.stdout.strip() else "no_answer"
        why = "printed nothing" if status == "no_output" else "its output holds no answer"
        return ProgramOutcome(status, None, why, tail, result.seconds)
    return ProgramOutcome("ok", answer, "", tail, result.seconds)
