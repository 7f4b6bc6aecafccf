"""What one verification costs: a candidate run on its tests in-process, in a plain
subprocess, and in the sandbox in each isolation mode this machine has (bubblewrap; a
subprocess as nobody, for a root ponder; unisolated), side by side in one run, with the
ratios.

Each execution is the one ``tests:visible`` makes: the harness defines a HumanEval
problem's canonical solution and runs its visible tests (``--hidden``: its hidden
tests instead). The in-process row runs the same program and cases with ``exec`` in a
fresh namespace (no isolation at all: the floor). Bubblewrap runs the installation's
own interpreter (what a virtualenv's python links to), so when that differs its plain
cost is a row too. The rows run in turn, ``--runs`` times each after one warm-up, one
execution at a time.

    python bench/sandbox_overhead.py [--runs 30] [--problem HumanEval/0] [--hidden]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ponder.core.execution import HARNESS, run_program
from ponder.core.sandbox import Sandbox, _bwrap, _bwrap_works
from ponder.tasks.code import assemble, code_spec, extract_code, hidden_cases
from ponder.tasks.humaneval import HumanEvalTask
from ponder.tasks.visible_tests import as_cases, visible_tests


def _in_process(program: str, cases: list[dict[str, Any]]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        ns: dict[str, Any] = {"__name__": "__candidate__"}
        exec(compile(program, "<program>", "exec"), ns)
        for case in cases:
            code = compile(case["source"], "<case>", case["mode"])
            value = exec(code, ns) if case["mode"] == "exec" else eval(code, ns)
            if case["expected"] is not None and value != eval(case["expected"], {}):
                return False
        return True

    return run


def _plain(
    program: str, cases: list[dict[str, Any]], entry: str, python: str
) -> Callable[[], Awaitable[bool]]:
    job = json.dumps({"program": program, "entry": entry, "cases": cases})
    folder = Path(tempfile.mkdtemp(prefix="ponder-bench-"))
    (folder / "main.py").write_text(HARNESS, encoding="utf-8")

    def once() -> bool:
        # what any subprocess costs: the same interpreter and harness (its verdicts on a
        # pipe of their own), no limits, no checks
        read, write = os.pipe()
        try:
            proc = subprocess.Popen(
                [python, "-I", "-B", "main.py", str(write)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                cwd=folder,
                pass_fds=(write,),
                text=True,
            )
            os.close(write)
            write = -1
            proc.communicate(job)
            with os.fdopen(read, "r") as verdicts:
                read = -1
                return proc.returncode == 0 and '"done"' in verdicts.read()
        finally:
            for fd in (read, write):
                if fd >= 0:
                    os.close(fd)

    async def run() -> bool:
        return await asyncio.to_thread(once)

    return run


def _sandboxed(
    sandbox: Sandbox, program: str, cases: list[dict[str, Any]], entry: str
) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return (await run_program(sandbox, program, cases, entry=entry)).ok

    return run


async def _time(run: Callable[[], Awaitable[bool]], runs: int) -> list[float]:
    if not await run():
        raise SystemExit("the warm-up execution failed: the program or cases are wrong")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ok = await run()
        times.append(time.perf_counter() - t0)
        if not ok:
            raise SystemExit("an execution failed part way through the measurement")
    return times


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30, help="timed executions per row")
    ap.add_argument("--problem", default="HumanEval/0", help="a HumanEval task id")
    ap.add_argument("--hidden", action="store_true", help="run the hidden tests instead")
    args = ap.parse_args()
    problems = {p.id: p for p in HumanEvalTask().load()}
    problem = problems[args.problem]
    spec = code_spec(problem)
    answer = extract_code(str(problem.answer))
    assert answer is not None
    program = assemble(spec.prompt, answer)
    cases = (
        hidden_cases(spec)
        if args.hidden
        else as_cases(visible_tests(spec.prompt, spec.entry_point))
    )
    rows: list[tuple[str, Callable[[], Awaitable[bool]]]] = [
        ("in-process exec (no isolation)", _in_process(program, cases)),
        ("plain subprocess (no limits)", _plain(program, cases, spec.entry_point, sys.executable)),
    ]
    base = str(Path(sys.executable).resolve())
    if base != sys.executable:
        # bubblewrap runs the installation's own interpreter (a virtualenv's is a link to
        # it, with other startup work): its plain cost, to compare like with like
        plain_base = _plain(program, cases, spec.entry_point, base)
        rows.append(("plain subprocess, bwrap's python", plain_base))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the weaker-isolation warning
        # a benchmark of the unisolated mode is the user's explicit choice to run it
        unisolated = Sandbox(isolation="unisolated", allow_unisolated=True)
        rows.append(("sandbox: unisolated + limits", _sandboxed(unisolated, program, cases,
                                                                spec.entry_point)))  # fmt: skip
        if os.geteuid() == 0:
            nobody = Sandbox(isolation="unprivileged")
            rows.append((f"sandbox: as nobody ({Path(nobody.interpreter).name})",
                         _sandboxed(nobody, program, cases, spec.entry_point)))  # fmt: skip
    if _bwrap() is not None and _bwrap_works():
        bwrap = Sandbox(isolation="bwrap", require_isolation=True)
        rows.append(
            ("sandbox: bubblewrap + limits", _sandboxed(bwrap, program, cases, spec.entry_point))
        )
    else:
        print("bubblewrap is missing or cannot run here: its row is left out")
    root = os.geteuid() == 0
    print(
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}, "
        f"{'root (programs run as nobody)' if root else 'not root'}"
    )
    print(f"interpreters: {sys.executable} (unisolated), {base} (bubblewrap)")
    print(
        f"{problem.id}: {'hidden' if args.hidden else 'visible'} tests, {len(cases)} cases, "
        f"{args.runs} executions per row\n"
    )
    results = [(name, await _time(run, args.runs)) for name, run in rows]
    floor = statistics.median(results[0][1])
    plain = statistics.median(results[1][1])
    print(f"{'execution':34} {'median ms':>10} {'p90 ms':>8} {'x plain':>8} {'x in-proc':>10}")
    for name, times in results:
        med = statistics.median(times)
        p90 = sorted(times)[int(0.9 * (len(times) - 1))]
        print(
            f"{name:34} {1000 * med:10.2f} {1000 * p90:8.2f} {med / plain:8.2f} {med / floor:10.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
