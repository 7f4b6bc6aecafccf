"""What each API key has spent on this server, as a running total.

Every request the server runs adds what its ledger holds when the request ends to the
account of the key it came with: a finished request, and also one that failed, timed out,
ran over its budget or was cancelled (a streaming client that left). A request refused
before any work (a bad request, a full queue) spends nothing and is not counted.

A key's account is read at ``GET /v1/ponder/usage`` with that key as the bearer token;
no route lists or reveals another key's account. Without configured keys the account is
the bearer token the client sends, or ``anonymous`` when it sends none. Accounts are
held in memory under the key's SHA-256 digest (the key itself is not kept), so a
restart starts every account at zero.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from ponder.core.types import Usage

__all__ = ["ANONYMOUS", "Account", "Accounts"]

ANONYMOUS = "anonymous"
"""The account of requests that present no key (only possible without configured keys)."""


@dataclass(frozen=True)
class Account:
    """One key's total: the tokens and calls of all its requests, how many requests
    ran and how many of them failed (an error reply, or cancelled)."""

    usage: Usage = field(default_factory=Usage)
    requests: int = 0
    failed_requests: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "usage": self.usage.to_dict(),
            "requests": self.requests,
            "failed_requests": self.failed_requests,
        }


def _account_id(key: str | None) -> str:
    # a digest, not the key: the table never holds a secret, and the no-key account
    # cannot collide with a client whose key is the literal word "anonymous"
    if key is None:
        return ANONYMOUS
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


class Accounts:
    """Running totals per key; safe to add to from several threads and tasks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, Account] = {}

    def add(self, key: str | None, usage: Usage, *, failed: bool) -> None:
        """Add one request that ran, with what it spent, to ``key``'s account."""
        ident = _account_id(key)
        with self._lock:
            old = self._totals.get(ident, Account())
            self._totals[ident] = Account(
                usage=old.usage + usage,
                requests=old.requests + 1,
                failed_requests=old.failed_requests + int(failed),
            )

    def get(self, key: str | None) -> Account:
        """``key``'s account (all zero for a key that has run nothing)."""
        with self._lock:
            return self._totals.get(_account_id(key), Account())
