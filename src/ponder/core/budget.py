"""The ledger of everything a piece of work spent, and scoped budgets on it.

A ``Ledger`` is append-only: every generate, score, train, probe and execute event with
its usage and time (an ``execute`` event is a batch of sandboxed program runs: no tokens,
its ``executions``, the seconds they took and the sandbox's ``isolation`` mode). Budgets
are opened on a ledger as context managers and stack: each counts only what was spent
while it was open, and a call must fit in every open budget.
The check happens *before* the call, against the call's worst case: ``n * max_tokens``
generated tokens, its calls, and, for a limit on total tokens, the prompt tokens it may
prefill (the engine's count: exact on the embedded engine, an upper bound on servers;
see ``ponder.core.engine.prompt_token_bound``). So a budget is never overrun: what the
ledger records inside it stays within every limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from ponder.core.errors import BudgetExceeded
from ponder.core.types import Usage

EventKind = Literal["generate", "score", "train", "probe", "execute", "verdict"]
"""What an event spent its compute on: ``generate`` (a strategy's own samples), ``score``
(a verifier), ``train`` (fitting or feature extraction), ``probe`` (short answer probes
on a fork of a chain of thought, ``probe_exit``) and ``execute`` (model-written programs
run in the sandbox: no tokens, their ``executions`` and seconds). ``verdict`` is on
detailed ledgers only: a scorer's scores of a set of candidates, which spends nothing
itself (the model calls it made are its ``score`` events; its wall time is in the
detail)."""


@dataclass(frozen=True)
class Event:
    """One piece of work. ``executions`` counts the programs an ``execute`` event ran;
    its ``seconds`` is their run time summed (they may have run side by side), and
    ``isolation`` the sandbox mode they ran in (``bwrap``, ``unprivileged`` or
    ``unisolated``; see ``ponder.core.sandbox``). ``detail`` is what a detailed ledger
    keeps of the work (see ``Ledger``), None on a plain one."""

    kind: EventKind
    usage: Usage
    seconds: float
    label: str = ""
    executions: int = 0
    isolation: str = ""
    detail: Mapping[str, Any] | None = None


@dataclass
class Budget:
    """Limits on one scope of work; ``None`` means unlimited.

    ``total_tokens`` counts prefilled prompt plus generated tokens: a call is checked
    against what was already spent plus its prompt tokens (as counted before the call,
    at least what it will prefill) plus its worst-case generated tokens.
    """

    total_tokens: int | None = None
    completion_tokens: int | None = None
    calls: int | None = None
    seconds: float | None = None
    used: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)

    def check(self, completion_tokens: int, calls: int, prompt_tokens: int = 0) -> None:
        u = self.used
        if self.calls is not None and u.calls + calls > self.calls:
            raise BudgetExceeded(
                f"call budget exhausted: {u.calls} of {self.calls} calls used, {calls} more needed"
            )
        if (
            self.completion_tokens is not None
            and u.completion_tokens + completion_tokens > self.completion_tokens
        ):
            raise BudgetExceeded(
                f"completion-token budget: {u.completion_tokens} of "
                f"{self.completion_tokens} used, the call may need {completion_tokens}"
            )
        need = prompt_tokens + completion_tokens
        if self.total_tokens is not None and u.total_tokens + need > self.total_tokens:
            raise BudgetExceeded(
                f"token budget: {u.total_tokens} of {self.total_tokens} used, the call may "
                f"need {need} more ({prompt_tokens} prompt, {completion_tokens} generated)"
            )
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            raise BudgetExceeded(f"time budget of {self.seconds:g}s is spent")

    def remaining_completion_tokens(self) -> int | None:
        limits = [
            lim - used
            for lim, used in (
                (self.completion_tokens, self.used.completion_tokens),
                (self.total_tokens, self.used.total_tokens),
            )
            if lim is not None
        ]
        return max(0, min(limits)) if limits else None


class Ledger:
    """Append-only record of events, with a stack of open budgets.

    A ``detailed`` ledger also keeps each event's ``detail``, for a trace of the work
    (``ponder serve --trace``): ``Context.generate`` gives a ``generate``, ``score`` or
    ``probe`` event its ``requests`` (the ``GenRequest``s) and ``outputs`` (their
    ``Completion``s, one list per request), and ``Context.score`` records a ``verdict``
    event with the ``scorer``, its ``scores`` and ``seconds``. A plain ledger drops the
    details, so holding one costs nothing in a long run.
    """

    def __init__(self, *, detailed: bool = False) -> None:
        self._events: list[Event] = []
        self._budgets: list[Budget] = []
        self.detailed = detailed

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(self._events)

    def total(self, kind: EventKind | None = None) -> Usage:
        return sum((e.usage for e in self._events if kind is None or e.kind == kind), Usage())

    def seconds(self, kind: EventKind | None = None) -> float:
        return sum(e.seconds for e in self._events if kind is None or e.kind == kind)

    def executions(self) -> int:
        """Programs run in a sandbox (``execute`` events), for verification or search."""
        return sum(e.executions for e in self._events)

    def isolation(self) -> dict[str, int]:
        """Executions per sandbox isolation mode, modes in sorted order."""
        counts: dict[str, int] = {}
        for e in self._events:
            if e.executions:
                counts[e.isolation] = counts.get(e.isolation, 0) + e.executions
        return dict(sorted(counts.items()))

    @property
    def limits_total_tokens(self) -> bool:
        """Whether an open budget limits total tokens, so a call's prompt tokens must be
        counted before it runs (``check``'s ``prompt_tokens``)."""
        return any(b.total_tokens is not None for b in self._budgets)

    def check(self, completion_tokens: int, calls: int = 1, *, prompt_tokens: int = 0) -> None:
        """Raise ``BudgetExceeded`` if a call of this worst case does not fit every
        budget: ``completion_tokens`` generated at most, ``prompt_tokens`` prefilled at
        most."""
        for b in self._budgets:
            b.check(completion_tokens, calls, prompt_tokens)

    def record(
        self,
        kind: EventKind,
        usage: Usage,
        seconds: float,
        label: str = "",
        *,
        executions: int = 0,
        isolation: str = "",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        if executions < 0:
            raise ValueError(f"executions must be >= 0, got {executions}")
        if executions and not isolation:
            raise ValueError("an event with executions says which isolation mode ran them")
        kept = detail if self.detailed else None
        self._events.append(Event(kind, usage, seconds, label, executions, isolation, kept))
        for b in self._budgets:
            b.used = b.used + usage

    def remaining_completion_tokens(self) -> int | None:
        """The tightest completion-token room left over all open budgets, or None."""
        rooms = [r for b in self._budgets if (r := b.remaining_completion_tokens()) is not None]
        return min(rooms) if rooms else None

    @contextmanager
    def budget(
        self,
        *,
        total_tokens: int | None = None,
        completion_tokens: int | None = None,
        calls: int | None = None,
        seconds: float | None = None,
    ) -> Iterator[Budget]:
        """Open a budget for the ``with`` block; it counts only what the block spends."""
        b = Budget(total_tokens, completion_tokens, calls, seconds)
        self._budgets.append(b)
        try:
            yield b
        finally:
            self._budgets.remove(b)
