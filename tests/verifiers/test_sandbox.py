"""Hostile programs in the sandbox: each is stopped or denied with a reason, and the
sandbox (and this machine) carries on. Real processes, real bubblewrap."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ponder.errors import ConfigError
from ponder.verifiers.sandbox import ExecResult, Limits, Sandbox, _bwrap_works

LIMITS = Limits(cpu_seconds=2, wall_seconds=5, memory_mb=256, processes=16, file_mb=1,
                max_output=10_000)  # fmt: skip


@pytest.fixture(scope="module")
def bwrap() -> Sandbox:
    if shutil.which("bwrap") is None or not _bwrap_works():
        pytest.skip("bubblewrap is not installed or cannot make namespaces here")
    return Sandbox(limits=LIMITS, isolation="bwrap", require_isolation=True)


@pytest.fixture(scope="module")
def plain() -> Sandbox:
    with pytest.warns(RuntimeWarning, match="isolation is weaker"):
        return Sandbox(limits=LIMITS, isolation="process")


async def _alive(sandbox: Sandbox) -> None:
    result = await sandbox.run("print(sum(range(10)))")
    assert result.ok and result.stdout == "45\n", result


async def test_a_normal_program_runs_and_reads_stdin(bwrap: Sandbox) -> None:
    result = await bwrap.run("import sys; print(sys.stdin.read().upper())", stdin="abc")
    assert (result.status, result.stdout, result.reason) == ("ok", "ABC\n", "")
    before = bwrap.executions
    failing = await bwrap.run("raise ValueError('boom')")
    assert failing.status == "error" and failing.reason == "ValueError: boom"
    assert bwrap.executions == before + 1 and bwrap.seconds > 0


HOSTILE = {
    "infinite loop": ("while True: pass", "timeout", "CPU"),
    "sleeping forever": ("import time; time.sleep(600)", "timeout", "wall clock"),
    "memory hog": ("x = bytearray(2 * 1024**3)", "memory", "256 MB"),
    "huge output": ("while True: print('x' * 1000)", "output", "10000 bytes"),
    "huge file": ("open('big', 'wb').write(b'0' * 4 * 1024**2)", "error", "File too large"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_programs_are_stopped_with_a_reason(bwrap: Sandbox, name: str) -> None:
    code, status, why = HOSTILE[name]
    result = await bwrap.run(code)
    assert result.status == status and why in result.reason, result
    assert result.seconds < LIMITS.wall_seconds + 3
    await _alive(bwrap)


async def test_a_fork_bomb_is_denied_and_leaves_nothing_behind(bwrap: Sandbox) -> None:
    if os.geteuid() != 0:
        pytest.skip("the process limit is enforced by running the program as nobody (root only)")
    bomb = "import os\nwhile True:\n    os.fork()\n"
    result = await bwrap.run(bomb)
    assert result.status in ("error", "timeout", "killed"), result
    assert "BlockingIOError" in result.stderr or result.status != "error"
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_nobody(p)]
    assert leftovers == []
    await _alive(bwrap)


def _is_nobody(proc: Path) -> bool:
    try:
        return proc.stat().st_uid == 65534
    except OSError:
        return False


async def test_writing_outside_its_folder_is_denied(bwrap: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    result = await bwrap.run(f"open({str(target)!r}, 'w').write('x')")
    assert result.status == "error" and not target.exists()
    ok = await bwrap.run("open('mine.txt', 'w').write('x'); open('/tmp/t', 'w').write('y')")
    assert ok.ok, ok


async def test_the_network_is_unreachable(bwrap: Sandbox) -> None:
    code = "import socket; socket.create_connection(('1.1.1.1', 80), timeout=3)"
    result = await bwrap.run(code)
    assert result.status == "error" and "unreachable" in result.reason.lower(), result
    local = await bwrap.run("import socket; socket.create_connection(('127.0.0.1', 22), 3)")
    assert local.status == "error" and "refused" in local.reason.lower()


async def test_files_it_should_not_read_are_not_there(bwrap: Sandbox) -> None:
    here = Path(__file__).resolve()
    result = await bwrap.run(f"print(open({str(here)!r}).read())")
    assert result.status == "error" and "FileNotFoundError" in result.reason
    home = await bwrap.run("import os; print(sorted(os.listdir(os.path.expanduser('~'))))")
    assert home.ok and home.stdout.strip() == "['main.py']"


async def test_without_bubblewrap_limits_still_hold(plain: Sandbox) -> None:
    for name in ("infinite loop", "memory hog", "huge output", "sleeping forever"):
        code, status, why = HOSTILE[name]
        result: ExecResult = await plain.run(code)
        assert result.status == status and why in result.reason, (name, result)
    await _alive(plain)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        Limits(cpu_seconds=0)
    with pytest.raises(ConfigError, match="require_isolation"):
        Sandbox(isolation="process", require_isolation=True)


async def test_both_ways_of_dropping_to_nobody_hold_the_process_limit(
    bwrap: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the program is run as nobody only when ponder runs as root")
    import ponder.verifiers.sandbox as sandbox_module

    probe = (
        "import os, resource\n"
        "print(os.getresuid(), os.getgroups(), resource.getrlimit(resource.RLIMIT_NPROC))"
    )
    want = f"(65534, 65534, 65534) [] ({LIMITS.processes}, {LIMITS.processes})\n"
    assert (await bwrap.run(probe)).stdout == want  # prlimit and setpriv, where present
    monkeypatch.setattr(sandbox_module, "_drop_tools", lambda: None)
    assert (await bwrap.run(probe)).stdout == want  # the Python shim
