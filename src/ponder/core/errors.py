"""ponder's exceptions, one hierarchy.

::

    PonderError
     +-- EngineError            an engine could not produce completions
     |    +-- EngineTimeout     the engine did not answer in time (retryable)
     |    +-- RateLimited       the server said 429 (retryable)
     |    +-- CapabilityMissing the engine lacks a power the request needs
     +-- BudgetExceeded         a call would not fit in the active budget
     +-- ConfigError            bad user input: flags, files, names
     +-- MissingExtra           an optional dependency is not installed

Every exception carries a message written for the user who sees it.
"""

from __future__ import annotations


class PonderError(Exception):
    """Base class of every error ponder raises on purpose."""


class EngineError(PonderError):
    """An engine failed to produce completions.

    ``retryable`` says whether trying the same call again may succeed.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class EngineTimeout(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class RateLimited(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class CapabilityMissing(EngineError):
    """The engine cannot do what the request asks (for example logprobs)."""


class BudgetExceeded(PonderError):
    """A call cannot fit in the remaining budget; raised before the call runs."""


class ConfigError(PonderError):
    """Invalid configuration or input supplied by the user."""


class MissingExtra(PonderError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'ponder[{extra}]'"
        )
        self.package = package
        self.extra = extra
