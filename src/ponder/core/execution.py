"""Run candidate programs on test cases in the sandbox, and score them by the tests they pass.

One execution per program: a small harness (``HARNESS``) runs inside the ``Sandbox`` in
two processes. Before it reads anything, the harness forks the program's process,
which loads the candidate's program and then only answers calls of its functions;
the harness's own process then reads the cases and the expected values from standard
input (the program's process never holds them), and runs each case: an expression
(``mode="eval"``, its value compared with the expected one, or only observed) or
statements (``mode="exec"``, such as the hidden tests' ``check``). A case passes when
it raises nothing and, where an expected value is given, its value matches. The tests
run in the harness's process: the program's functions are stand-ins there, and each
call goes to the program's process and comes back as data (numbers, strings, bytes,
lists, tuples, sets, dicts, None; anything else as its text, equal to nothing), or as
the exception it raised. The program's names reach the tests except those of
builtins, so a program cannot redefine ``abs`` or ``isinstance`` under a test.

Verdicts: only the harness's process writes them, one line per case as soon as it has
it (so a case that hangs or exhausts a limit still leaves the results before it), on
the sandbox's result channel (``Sandbox.run(channel=True)``), a pipe the program's
process never holds: it closes it before the candidate's code runs, and the harness
makes itself undumpable (``PR_SET_DUMPABLE``), so no process of the same user can open
its descriptors through ``/proc`` or trace it. Whatever the program prints, writes to
its descriptors, patches in its own process, or how it exits, it cannot forge a pass:
a pass needs the right values from its functions. When the program's process ends
during a case (its CPU limit, an exit, a signal), that case fails, with the reason,
even if the tests caught the exception, and later cases are not run. This holds in the
``bwrap`` and ``unprivileged`` modes; a program run ``unisolated`` has the user's
privileges and, as root, reaches every process (see ``ponder.core.sandbox``).

``ProgramRun`` is what one execution found: whether the program loaded, each case's
outcome with its output and, for a failure, the reason (the exception, the mismatch, or
the sandbox's verdict: a timeout, the memory limit, too much output), and the
isolation mode it ran in. ``run_programs`` runs several (identical programs once), and
puts them on the ledger as one ``execute`` event (executions and their seconds, summed,
and the isolation mode).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ponder.core.budget import Ledger
from ponder.core.sandbox import ExecResult, Limits, Sandbox
from ponder.core.types import Usage

__all__ = [
    "HARNESS",
    "CaseResult",
    "ProgramRun",
    "default_sandbox",
    "run_blocking",
    "run_program",
    "run_programs",
]


HARNESS = r"""
import builtins, json, math, os, resource, signal, sys, time, traceback

# the program may write to this file's folder: nothing is ever imported from there
_HERE = os.path.dirname(os.path.abspath(sys.argv[0]))
sys.path[:] = [p for p in sys.path if p and os.path.abspath(p) != _HERE]
_VERDICTS = int(sys.argv[1])  # the result pipe: only this process holds it
_MAX_REPLY = 16 * 2**20
_DEPTH = 60
_DATA = (int, float, complex, str, bytes, list, tuple, set, frozenset, dict)


def _guard():
    # no other process of this user may read this one's memory or open its descriptors
    # (/proc/PID/fd, ptrace): the result pipe and the tests stay out of the program's reach
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
            return "prctl(PR_SET_DUMPABLE) failed: errno " + str(ctypes.get_errno())
    except Exception as e:
        return "cannot make the harness private: " + repr(e)
    return None


class _Opaque:
    # a value of the program's that is not data: only its text crosses, equal to nothing
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


class _Remote:
    # a function of the program: each call runs in the program's process, data only
    def __init__(self, name):
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        request = {"call": self.__name__, "args": [_enc(a, True) for a in args],
                   "kwargs": {k: _enc(v, True) for k, v in kwargs.items()}}
        reply = _ask(request)
        if isinstance(reply, dict) and "value" in reply:
            try:
                return _dec(reply["value"])
            except Exception as e:
                _end("a value it returned is not data the harness wrote (" + repr(e)[:100] + ")")
        if isinstance(reply, dict) and "raise" in reply:
            _raise(reply)
        _end("it answered a call with something other than a value or an exception")

    def __repr__(self):
        return "<function " + self.__name__ + " of the program>"


class ProgramError(Exception):
    pass


class _Gone(BaseException):
    # the program's process has ended; a test that catches everything still fails
    pass


def _enc(v, strict, depth=0):
    # a value as JSON, by type: only data crosses between the processes
    t = type(v)
    if v is None or t is bool or t is str:
        return v
    if t is int:
        return v if abs(v) < 10**15 else {"x": format(v, "x")}
    if t is float:
        return {"f": repr(v)}
    if t is complex:
        return {"c": [repr(v.real), repr(v.imag)]}
    if t is bytes:
        return {"b": v.hex()}
    if depth > _DEPTH:
        if strict:
            raise ValueError("a value nested too deeply to pass to the program")
        return {"o": "..."}
    if t in (list, tuple, set, frozenset):
        tag = {list: "l", tuple: "t", set: "s", frozenset: "z"}[t]
        return {tag: [_enc(x, strict, depth + 1) for x in v]}
    if t is dict:
        return {"d": [[_enc(k, strict, depth + 1), _enc(x, strict, depth + 1)]
                      for k, x in v.items()]}
    if strict and isinstance(v, _Remote):
        return {"r": v.__name__}
    for base in _DATA:
        if isinstance(v, base):
            return _enc(base(v), strict, depth)
    if strict:
        raise TypeError("the tests cannot pass " + t.__name__ + " to the program: it runs in "
                        "a process of its own, and only data and its functions cross")
    try:
        text = repr(v)[:1000]
    except BaseException:
        text = "<" + t.__name__ + " object>"
    return {"o": text}


def _dec(x, names=None, depth=0):
    # the inverse of _enc; anything else is refused (ValueError, TypeError, KeyError)
    if x is None or type(x) in (bool, int, str):
        return x
    if depth > _DEPTH + 1 or type(x) is not dict or len(x) != 1:
        raise ValueError("not an encoded value")
    ((tag, v),) = x.items()
    if tag in ("l", "t", "s", "z"):
        if type(v) is not list:
            raise ValueError("not an encoded value")
        items = [_dec(y, names, depth + 1) for y in v]
        return {"l": list, "t": tuple, "s": set, "z": frozenset}[tag](items)
    if tag == "d":
        return {_dec(k, names, depth + 1): _dec(w, names, depth + 1) for k, w in v}
    if type(v) is not str and tag != "c":
        raise ValueError("not an encoded value")
    if tag == "f":
        return float(v)
    if tag == "x":
        return int(v, 16)
    if tag == "c":
        return complex(float(v[0]), float(v[1]))
    if tag == "b":
        return bytes.fromhex(v)
    if tag == "o":
        return _Opaque(v)
    if tag == "r" and names is not None:
        return names[v]
    raise ValueError("not an encoded value")


_sources = {}


def _why(e):
    # the exception, and the innermost line of the program or the cases it came from
    text = (type(e).__name__ + ": " + str(e)).rstrip(": ")[:300]
    for frame, line in reversed(list(traceback.walk_tb(e.__traceback__))):
        lines = _sources.get(frame.f_code.co_filename, [])
        if 0 < line <= len(lines):
            return text + " (at: " + lines[line - 1].strip()[:200] + ")"
    return text


# -- the program's process: runs the model's code, answers calls with data ---------------


def _program(requests, replies):
    # never returns into the harness's code: whatever happens, this process ends here
    status = 70
    try:
        os.close(_VERDICTS)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        ns = {"__name__": "__candidate__"}
        me = os.getpid()
        with os.fdopen(requests, "rb") as inp, os.fdopen(replies, "wb") as out:
            for line in inp:
                reply = _serve(json.loads(line), ns)
                if os.getpid() != me:
                    os._exit(0)  # a process the program forked: it has no call to answer
                out.write(json.dumps(reply).encode() + b"\n")
                out.flush()
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(status)


def _serve(request, ns):
    if "program" in request:
        _sources["<program>"] = request["program"].splitlines()
        try:
            exec(compile(request["program"], "<program>", "exec"), ns)
            entry = request.get("entry")
            if entry and not callable(ns.get(entry)):
                raise NameError("the program defines no function " + entry)
        except BaseException as e:
            return {"load": _why(e)}
        return {"load": None, "names": _names(ns, request["want"])}
    try:
        args = [_dec(a, ns) for a in request["args"]]
        kwargs = {k: _dec(v, ns) for k, v in request["kwargs"].items()}
        value = ns[request["call"]](*args, **kwargs)
        try:
            return {"value": _enc(value, False)}
        except BaseException as e:
            return {"value": {"o": "<a value that cannot be read: " + _why(e) + ">"}}
    except BaseException as e:
        return {"raise": type(e).__name__, "message": str(e)[:300], "why": _why(e)}


def _names(ns, wanted):
    # what the tests may use of the program: its functions, modules and data values
    kinds = {}
    for name in wanted:
        if name not in ns:
            continue
        v = ns[name]
        if isinstance(v, type(os)):
            kinds[name] = {"module": v.__name__}
        elif callable(v):
            kinds[name] = {"call": True}
        else:
            try:
                kinds[name] = {"value": _enc(v, False)}
            except BaseException:
                continue
    return kinds


# -- the harness's process: runs the tests, and alone writes the verdicts ------------------

_pid = 0
_requests = _replies = None
_gone = None  # (status, reason) once the program's process has ended


def _ask(request):
    # one request to the program's process and its one-line reply (JSON)
    if _gone is not None:
        raise _Gone(_gone[1])
    try:
        _requests.write(json.dumps(request).encode() + b"\n")
        _requests.flush()
        line = _replies.readline(_MAX_REPLY)
    except OSError:
        line = b""
    if not line:
        _end(None)
    if not line.endswith(b"\n"):
        _end("it wrote a reply longer than " + str(_MAX_REPLY) + " bytes")
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        _end("it wrote something other than a reply to the harness")


def _end(violation):
    # the program's process is gone or broke the protocol: it ends here, and so does every
    # case that needs it, whatever the tests do with the exception
    global _gone
    if violation is not None:
        _kill()
        _gone = ("error", "the program broke the harness's protocol: " + violation)
    else:
        _gone = _ending(_reap())
    raise _Gone(_gone[1])


def _kill():
    try:
        os.kill(_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap():
    # its end of the pipe closed: it is exiting (or closed it on purpose, then it is killed)
    deadline = time.monotonic() + 1.0
    while True:
        pid, status = os.waitpid(_pid, os.WNOHANG)
        if pid:
            return status
        if time.monotonic() > deadline:
            _kill()
            return -1
        time.sleep(0.002)


def _ending(status):
    if status == -1:
        return ("error", "the program closed its channel to the harness")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            cpu = resource.getrlimit(resource.RLIMIT_CPU)[0]
            return ("timeout", "used more than " + str(cpu) + " s of CPU")
        if sig == signal.SIGXFSZ:
            size = resource.getrlimit(resource.RLIMIT_FSIZE)[0] // 2**20
            return ("output", "wrote a file larger than " + str(size) + " MB")
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return ("killed", "killed by signal " + name)
    code = os.WEXITSTATUS(status)
    return ("error", "the program exited with status " + str(code)
            + " before the harness finished")


def _raise(reply):
    # the program's exception, raised here so the tests can catch it like their own
    name, message, why = reply.get("raise"), reply.get("message"), reply.get("why")
    if not all(isinstance(x, str) for x in (name, message, why)):
        _end("it reported an exception without its name, message and place")
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = ProgramError
    try:
        e = cls(message)
    except Exception:
        e = ProgramError(message)
    e.ponder_reason = why
    raise e


def _referenced(code, found):
    # every global name the tests' code (nested functions included) may look up
    found.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, type(code)):
            _referenced(const, found)


def _bind(kinds, wanted, ns):
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    for name, kind in kinds.items():
        # the program cannot stand in for a builtin or a dunder name the tests use
        if name not in wanted or name.startswith("__") or hasattr(builtins, name):
            continue
        if kind.get("call") is True:
            ns[name] = _Remote(name)
        elif "value" in kind:
            ns[name] = _dec(kind["value"])
        elif isinstance(kind.get("module"), str) and kind["module"].split(".")[0] in stdlib:
            import importlib

            ns[name] = importlib.import_module(kind["module"])


def _canon(v, depth=0):
    # a value as text, the same for equal values (floats to 6 decimals, sets and
    # dicts in sorted order) so outputs can be compared across programs
    if depth > 30:
        return "..."
    if isinstance(v, float):
        return repr(round(v, 6))
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_canon(x, depth + 1) for x in v)
        if isinstance(v, list):
            return "[" + inner + "]"
        return "(" + inner + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, (set, frozenset)):
        return "{" + ", ".join(sorted(_canon(x, depth + 1) for x in v)) + "}"
    if isinstance(v, dict):
        items = sorted(_canon(k, depth + 1) + ": " + _canon(x, depth + 1) for k, x in v.items())
        return "{" + ", ".join(items) + "}"
    return repr(v)


def _same(got, want):
    if isinstance(want, float) or isinstance(got, float):
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (got, want))
        return numbers and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(want, (list, tuple)) and type(got) is type(want):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    return bool(got == want)


def _case(case, code, ns):
    if isinstance(code, BaseException):
        raise code
    if case["mode"] == "exec":
        exec(code, ns)
        value = None
    else:
        value = eval(code, ns)
    if _gone is not None:  # the tests caught the end of the program: it still fails
        raise _Gone(_gone[1])
    result = {"out": _canon(value)[:1000]}
    if case["expected"] is None:
        result["ok"] = True
    elif case["compare"] == "repr":
        result["ok"] = repr(value) == case["expected"]
    else:
        result["ok"] = _same(value, eval(case["expected"], {}))
    if not result["ok"]:
        result["error"] = "expected " + case["expected"][:200] + ", got " + result["out"][:200]
    return result


def _harness(say):
    job = json.loads(sys.stdin.read())
    cases = job["cases"]
    codes, wanted = [], set()
    for i, case in enumerate(cases):
        name = "<case " + str(i) + ">"
        _sources[name] = case["source"].splitlines()
        try:
            codes.append(compile(case["source"], name, case["mode"]))
            _referenced(codes[-1], wanted)
        except BaseException as e:
            codes.append(e)
    try:
        reply = _ask({"program": job["program"], "entry": job.get("entry"),
                      "want": sorted(wanted)})
        if not (isinstance(reply, dict) and "load" in reply):
            _end("it answered the load with something other than its outcome")
        if reply["load"] is not None:
            say({"load": str(reply["load"])[:1000]})
            return
        ns = {"__name__": "__tests__", "__builtins__": builtins}
        _bind(reply.get("names", {}), wanted, ns)
    except _Gone as e:
        say({"load": "its process ended while loading (" + _gone[0] + ": " + str(e) + ")"})
        return
    except Exception as e:
        say({"load": "the program's names could not be read: " + _why(e)})
        return
    say({"load": None})
    for i, case in enumerate(cases):
        result = {"i": i}
        if _gone is not None:
            result.update(ok=False, error="not run: an earlier case ended the program ("
                          + _gone[0] + ": " + _gone[1] + ")")
        else:
            try:
                result.update(_case(case, codes[i], ns))
            except BaseException as e:
                if _gone is not None:
                    why = _gone[0] + ": " + _gone[1]
                else:
                    why = getattr(e, "ponder_reason", None) or _why(e)
                result.update(ok=False, error=why)
        say(result)
    say({"done": True, "status": "ok" if _gone is None else _gone[0]})


def _fork():
    # the process limit is per user: another program run as nobody (a fork bomb next
    # door) may hold every slot for a moment, until its processes end
    deadline = time.monotonic() + 3.0
    while True:
        try:
            return os.fork()
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _main():
    global _pid, _requests, _replies
    problem = _guard()
    if problem is not None:
        os.write(_VERDICTS, (json.dumps({"fatal": problem}) + "\n").encode())
        os._exit(0)
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    # the program's process starts before the job is read: it never holds the tests
    _pid = _fork()
    if _pid == 0:
        os.close(request_w)
        os.close(reply_r)
        _program(request_r, reply_w)
    os.close(request_r)
    os.close(reply_w)
    _requests = os.fdopen(request_w, "wb")
    _replies = os.fdopen(reply_r, "rb")
    with os.fdopen(_VERDICTS, "w") as verdicts:

        def say(obj):
            verdicts.write(json.dumps(obj) + "\n")
            verdicts.flush()

        _harness(say)
    if _gone is None:
        _kill()
    os._exit(0)


_main()
"""


@dataclass(frozen=True)
class CaseResult:
    """One case of one execution: passed or not, the value it gave (as text, None when
    it gave none) and, for a failure, why."""

    ok: bool
    output: str | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "output": self.output, "reason": self.reason}


@dataclass(frozen=True)
class ProgramRun:
    """What one execution of a program found (see the module doc). ``status`` is how
    the program's processes ended (the sandbox's status, or the limit that ended the
    program's process part way), ``seconds`` and ``isolation`` (the mode it ran in) the
    sandbox's; ``reason`` is empty when every case passed."""

    loaded: bool
    cases: tuple[CaseResult, ...]
    status: str
    seconds: float
    reason: str = ""
    isolation: str = ""

    @property
    def passed(self) -> int:
        return sum(c.ok for c in self.cases)

    @property
    def ok(self) -> bool:
        """The program loaded and passed every case."""
        return self.loaded and self.passed == len(self.cases)

    @property
    def fraction(self) -> float:
        """The share of cases passed; for no cases, 1 when the program loaded."""
        if not self.cases:
            return 1.0 if self.loaded else 0.0
        return self.passed / len(self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "passed": self.passed,
            "cases": len(self.cases),
            "status": self.status,
            "seconds": self.seconds,
            "reason": self.reason,
            "failures": [c.reason for c in self.cases if not c.ok],
            "isolation": self.isolation,
        }


@functools.cache
def default_sandbox() -> Sandbox:
    """The sandbox code verification uses unless given one: the best isolation that may
    run here (``Sandbox``'s ``"auto"``: a refusal is a ``ConfigError``), the default
    ``Limits``."""
    return Sandbox(limits=Limits())


def _results(result: ExecResult) -> list[dict[str, Any]]:
    """The harness's lines: only its own process writes the result channel."""
    lines = []
    for line in result.channel.splitlines():
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short when the sandbox ended the harness
        if isinstance(parsed, dict):
            lines.append(parsed)
    return lines


def _verdict(result: ExecResult) -> str:
    if result.ok:
        return "the harness exited before it finished"
    return f"{result.status}: {result.reason}"


def _failed(cases: Sequence[Any], result: ExecResult, why: str) -> ProgramRun:
    failed = tuple(CaseResult(False, None, why) for _ in cases)
    return ProgramRun(False, failed, result.status, result.seconds, why, result.isolation)


async def run_program(
    sandbox: Sandbox, program: str, cases: Sequence[Mapping[str, Any]], *, entry: str | None
) -> ProgramRun:
    """Run ``program`` on ``cases`` in one sandboxed execution (see the module doc);
    ``entry`` is the function it must define (None: no check)."""
    job = {"program": program, "entry": entry, "cases": list(cases)}
    result = await sandbox.run(HARNESS, stdin=json.dumps(job), channel=True)
    lines = _results(result)
    fatal = next((line for line in lines if "fatal" in line), None)
    if fatal is not None:
        return _failed(cases, result, f"the harness could not keep its verdicts private: "
                                      f"{fatal['fatal']}")  # fmt: skip
    load = next((line for line in lines if "load" in line), None)
    if load is None or load["load"] is not None:
        why = (
            f"the program does not load: {load['load']}"
            if load is not None
            else f"the program did not finish loading ({_verdict(result)})"
        )
        return _failed(cases, result, why)
    by_index = {int(line["i"]): line for line in lines if "i" in line}
    outcomes: list[CaseResult] = []
    stopped = ""
    for i in range(len(cases)):
        line = by_index.get(i)
        if line is not None:
            outcomes.append(CaseResult(bool(line["ok"]), line.get("out"), line.get("error", "")))
        elif not stopped:
            stopped = _verdict(result)
            outcomes.append(CaseResult(False, None, stopped))
        else:
            why = f"not run: an earlier case ended the program ({stopped})"
            outcomes.append(CaseResult(False, None, why))
    first_failure = next((c.reason for c in outcomes if not c.ok), "")
    done = next((line for line in lines if "done" in line), {})
    status = result.status if not result.ok else str(done.get("status", "ok"))
    return ProgramRun(
        True, tuple(outcomes), status, result.seconds, first_failure, result.isolation
    )


async def run_programs(
    sandbox: Sandbox,
    programs: Sequence[str],
    cases: Sequence[Mapping[str, Any]],
    *,
    entry: str | None,
    ledger: Ledger | None,
    label: str,
    parallel: int | None = None,
) -> list[ProgramRun]:
    """Run each program on ``cases``, identical programs once, at most ``parallel`` at a
    time (default: the CPUs, up to 4); the executions, their seconds and the sandbox's
    isolation mode go on ``ledger`` as one ``execute`` event."""
    distinct = list(dict.fromkeys(programs))
    width = parallel or max(1, min(4, os.cpu_count() or 1))
    gate = asyncio.Semaphore(width)

    async def one(program: str) -> ProgramRun:
        async with gate:
            return await run_program(sandbox, program, cases, entry=entry)

    runs = dict(zip(distinct, await asyncio.gather(*(one(p) for p in distinct)), strict=True))
    if ledger is not None and distinct:
        seconds = sum(r.seconds for r in runs.values())
        ledger.record(
            "execute", Usage(), seconds, label, executions=len(distinct), isolation=sandbox.mode
        )
    return [runs[p] for p in programs]


T = TypeVar("T")


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end from synchronous code: on this thread when no event
    loop runs here, else on a thread of its own (this thread waits)."""

    async def go() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(go())
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, go()).result()
