"""What each API key has spent on this server, as a running total.

Every request the server runs adds what its ledger holds when the request ends to the
account of the key it came with: a finished request, and also one that failed, timed out,
ran over its budget or was cancelled (a streaming client that left). A request refused
before any work (a bad request, a full queue) spends nothing and is not counted.

A key's account is read at ``GET /v1/ponder/usage`` with that key as the bearer token;
no route lists or reveals another key's account. Without configured keys the account is
the bearer token the client sends, or ``anonymous`` when it sends none. Accounts are
held in memory under the key's SHA-256 digest (the key itself is not kept), so a
restart starts every account at zero. ``read_api_keys`` gathers the configured keys.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError
from ponder.core.types import Usage

__all__ = ["ANONYMOUS", "Account", "Accounts", "read_api_keys"]

ANONYMOUS = "anonymous"
"""The account of requests that present no key (only possible without configured keys)."""


def read_api_keys(keys: Iterable[str], key_file: str | Path | None = None) -> frozenset[str]:
    """The keys clients must send: ``keys`` (``--api-key``) and the lines of ``key_file``
    (``--api-key-file``: one key a line; blank lines and ``#`` comments skipped), each
    stripped. A key file that cannot be read, or that leaves no key at all, is a
    ``ConfigError``."""
    found = {k.strip() for k in keys if k.strip()}
    if key_file:
        path = Path(key_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ConfigError(f"cannot read --api-key-file {path}: {e}") from e
        found |= {line.strip() for line in lines if line.strip() and not line.startswith("#")}
        if not found:
            raise ConfigError(f"--api-key-file {path} holds no keys")
    return frozenset(found)


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
