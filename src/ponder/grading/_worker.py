"""A math-verify worker process: the script ``grading.py`` starts, one per busy grader.

It is run as a script (``python -P _worker.py``), not through the ponder
package, so it starts fast, never re-runs the user's ``__main__`` (as multiprocessing's
spawn would) and never inherits the parent's threads (as fork would). It imports
nothing of ponder.

Protocol: JSON ``[predicted, reference]`` lines in; out, one line each: ``1`` (equal),
``0`` (not), or ``!`` and why math-verify failed. ``grading.py`` times each reply and
kills a worker that does not answer in time.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys

_WORKER_MEMORY_BYTES = 2 * 1024**3
_MAX_REASON_CHARS = 500


class _VerifyFailed(Exception):
    """math-verify raised on every reading of the pair that it did not find unequal."""


def _math_verify(predicted: str, reference: str) -> bool:
    """Run math-verify with its signal-based timeouts off; only in a worker process.

    math-verify's own ``verify`` turns an exception into False; here it raises, so
    that a comparison that failed is told apart from a mismatch. Each pairing of a
    reading of the reference with one of the prediction is tried as ``verify`` tries
    them, and any match wins; ``_VerifyFailed`` only when none matched and some raised.
    """
    from math_verify import parse, verify

    gold = parse(f"${reference}$", parsing_timeout=None, raise_on_error=True)
    target = parse(f"${predicted}$", parsing_timeout=None, raise_on_error=True)
    failures: list[str] = []
    for g, t in itertools.product(gold, target):
        try:
            if verify(g, t, timeout_seconds=None, raise_on_error=True):
                return True
        except Exception as exc:  # this pairing failed; another may still match
            failures.append(f"{type(exc).__name__}: {exc}")
    if failures:
        raise _VerifyFailed("; ".join(failures))
    return False


def serve() -> None:
    """The worker's main loop; see the module docstring for the protocol."""
    try:
        import resource

        # a runaway sympy computation should die of MemoryError, not take the machine
        resource.setrlimit(resource.RLIMIT_AS, (_WORKER_MEMORY_BYTES, _WORKER_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    # the protocol owns the real stdout; anything a library prints goes to stderr
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # ponder bounds the time itself; math-verify's warning about that is noise here
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    import math_verify  # noqa: F401  (before "ready", so that calls are timed fairly)

    protocol.write("ready\n")
    protocol.flush()
    for line in sys.stdin:
        try:
            predicted, reference = json.loads(line)
            reply = "1" if _math_verify(str(predicted), str(reference)) else "0"
        except Exception as exc:  # math-verify is a black box: its failure is the reply
            why = str(exc) if isinstance(exc, _VerifyFailed) else f"{type(exc).__name__}: {exc}"
            reply = "!" + " ".join(why.split())[:_MAX_REASON_CHARS]
        protocol.write(reply + "\n")
        protocol.flush()


if __name__ == "__main__":
    serve()
