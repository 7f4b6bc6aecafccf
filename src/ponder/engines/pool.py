"""Several servers of one model behind one engine.

``EnginePool`` sends each request to the healthy member with the fewest requests in
flight (ties: the one that has served fewest, so an idle pool goes round the members).
A member whose call fails with a retryable ``EngineError`` (unreachable, 5xx, timeout,
429, after the member's own retries) is marked down and the request goes to another
healthy member, so a server that dies mid-run costs its in-flight requests one more
attempt elsewhere, not an answer. A down member is checked again (``health()``, when the
member has one: ``GET /models`` for ``OpenAIEngine``) ``recheck_after`` seconds later and
rejoins when it answers. Errors that would fail anywhere (a 400, a body that is not
JSON, a missing capability) are raised as they are.

Members are checked once before the first request; a pool with no member answering
raises ``EngineError`` naming each member and its error. Each member's usage is the
server's own, unchanged: the pool adds no tokens. Sampling seeds travel with the
request, so which member answers changes nothing when the servers are deterministic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core.engine import Capabilities, Engine, prompt_token_bound
from ponder.core.errors import CapabilityMissing, ConfigError, EngineError
from ponder.core.types import Completion, GenRequest

__all__ = ["EnginePool", "MemberStats"]


@dataclass(frozen=True)
class MemberStats:
    """One member's account: requests served, failures seen, its state now."""

    label: str
    served: int
    failures: int
    healthy: bool
    last_error: str | None


class _Member:
    def __init__(self, engine: Engine, label: str) -> None:
        self.engine = engine
        self.label = label
        self.outstanding = 0
        self.served = 0
        self.failures = 0
        self.healthy = True
        self.retry_at = 0.0
        self.last_error: str | None = None
        self.check: asyncio.Task[None] | None = None

    def stats(self) -> MemberStats:
        return MemberStats(self.label, self.served, self.failures, self.healthy, self.last_error)


class EnginePool:
    """One engine over ``members`` (engines of the same model); see the module doc.

    ``labels`` name the members in errors and stats (default: a member's ``base_url``,
    else its position). ``recheck_after`` is the seconds a failed member waits before
    its next health check; ``health_timeout`` bounds one check.
    """

    def __init__(
        self,
        members: Sequence[Engine],
        *,
        labels: Sequence[str] | None = None,
        recheck_after: float = 5.0,
        health_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not members:
            raise ConfigError("an engine pool needs at least one member")
        names = {m.name for m in members}
        if len(names) > 1:
            raise ConfigError(
                f"an engine pool serves one model; its members are {', '.join(sorted(names))}"
            )
        if labels is not None and len(labels) != len(members):
            raise ConfigError("give one label per pool member")
        if recheck_after < 0 or not health_timeout > 0:
            raise ConfigError("recheck_after must be >= 0 and health_timeout > 0 seconds")
        self._members = [
            _Member(m, labels[i] if labels else str(getattr(m, "base_url", f"member {i}")))
            for i, m in enumerate(members)
        ]
        self._recheck_after = recheck_after
        self._health_timeout = health_timeout
        self._clock = clock
        self._started: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._members[0].engine.name

    @property
    def members(self) -> list[Engine]:
        return [m.engine for m in self._members]

    @property
    def capabilities(self) -> Capabilities:
        """What every member can do (a power one member lacks is not promised)."""
        caps = [m.engine.capabilities for m in self._members]
        return Capabilities(
            native_n=all(c.native_n for c in caps),
            logprobs=all(c.logprobs for c in caps),
            top_logprobs=min(c.top_logprobs for c in caps),
            prefix_reuse=all(c.prefix_reuse for c in caps),
            fork=all(c.fork for c in caps),
            embeddings=False,
            confidence_stop=all(c.confidence_stop for c in caps),
            tools=all(c.tools for c in caps),
        )

    def stats(self) -> list[MemberStats]:
        return [m.stats() for m in self._members]

    def prompt_tokens(self, request: GenRequest) -> int:
        """The most prompt tokens any member may charge ``request`` (it may go to any)."""
        return max(prompt_token_bound(m.engine, request) for m in self._members)

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        await self._start()
        tasks = [asyncio.ensure_future(self._route(req)) for req in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def aclose(self) -> None:
        for m in self._members:
            if m.check is not None:
                m.check.cancel()
        errors: list[BaseException] = []
        for m in self._members:
            try:
                await m.engine.aclose()
            except Exception as e:  # close every member; report the first failure after
                errors.append(e)
        if errors:
            raise errors[0]

    # -- routing -----------------------------------------------------------------------

    async def _start(self) -> None:
        if self._started is None:
            self._started = asyncio.ensure_future(self._check_all())
        await asyncio.shield(self._started)

    async def _check_all(self) -> None:
        await asyncio.gather(*(self._check(m) for m in self._members))
        if not any(m.healthy for m in self._members):
            raise EngineError(
                f"none of the {len(self._members)} servers of {self.name} answered: "
                + "; ".join(f"{m.label}: {m.last_error}" for m in self._members)
            )

    async def _check(self, member: _Member) -> None:
        health = getattr(member.engine, "health", None)
        if health is None:  # nothing to ask: try it again with the next request
            member.healthy = True
            return
        try:
            await health(timeout=self._health_timeout)
        except EngineError as e:
            self._mark_down(member, e, count=False)
            return
        member.healthy = True

    def _mark_down(self, member: _Member, error: EngineError, *, count: bool = True) -> None:
        member.healthy = False
        member.failures += int(count)
        member.last_error = str(error)
        member.retry_at = self._clock() + self._recheck_after

    def _recheck_due(self) -> None:
        now = self._clock()
        for m in self._members:
            if not m.healthy and m.retry_at <= now and (m.check is None or m.check.done()):
                m.retry_at = now + self._recheck_after
                m.check = asyncio.ensure_future(self._check(m))

    def _pick(self, tried: set[int]) -> _Member | None:
        self._recheck_due()
        ready = [m for i, m in enumerate(self._members) if m.healthy and i not in tried]
        if not ready:
            return None
        return min(ready, key=lambda m: (m.outstanding, m.served))

    async def _route(self, req: GenRequest) -> list[Completion]:
        tried: set[int] = set()
        last: EngineError | None = None
        while True:
            member = self._pick(tried)
            if member is None:
                detail = "; ".join(f"{m.label}: {m.last_error}" for m in self._members)
                raise EngineError(
                    f"no server of {self.name} could answer ({detail})", retryable=True
                ) from last
            tried.add(self._members.index(member))
            member.outstanding += 1
            try:
                out = await member.engine.generate([req])
            except CapabilityMissing:
                raise
            except EngineError as e:
                if not e.retryable:
                    raise
                self._mark_down(member, e)
                last = e
                continue
            finally:
                member.outstanding -= 1
            member.served += 1
            return out[0]

    def __repr__(self) -> str:
        labels: Any = [m.label for m in self._members]
        return f"EnginePool({self.name!r}, {labels})"
