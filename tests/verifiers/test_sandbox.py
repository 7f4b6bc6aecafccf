"""Hostile programs in the sandbox: each is stopped or denied with a reason, and the
sandbox (and this machine) carries on, in every isolation mode this machine has. Real
processes, real bubblewrap; without bubblewrap (hidden), a root ponder runs programs as
nobody, and anything weaker runs only when the user opts in."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

import ponder.core.sandbox as sandbox_module
from _coding import LIMITS, MODES, runs_as_nobody, sandbox_in
from ponder.core.errors import ConfigError
from ponder.core.sandbox import ALLOW_UNISOLATED_ENV, Limits, Sandbox


@pytest.fixture(scope="module")
def bwrap() -> Sandbox:
    return sandbox_in("bwrap")


@pytest.fixture(params=MODES)
def any_mode(request: pytest.FixtureRequest) -> Sandbox:
    return sandbox_in(request.param)


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without bubblewrap, and with no opt-in in the environment."""
    monkeypatch.setattr(sandbox_module, "_bwrap", lambda: None)
    monkeypatch.delenv(ALLOW_UNISOLATED_ENV, raising=False)


@pytest.fixture
def not_root(no_bwrap: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


async def _alive(sandbox: Sandbox) -> None:
    result = await sandbox.run("print(sum(range(10)))")
    assert result.ok and result.stdout == "45\n", result


async def test_a_normal_program_runs_and_reads_stdin(any_mode: Sandbox) -> None:
    result = await any_mode.run("import sys; print(sys.stdin.read().upper())", stdin="abc")
    assert (result.status, result.stdout, result.reason) == ("ok", "ABC\n", "")
    assert result.isolation == any_mode.mode
    before = any_mode.executions
    failing = await any_mode.run("raise ValueError('boom')")
    assert failing.status == "error" and failing.reason == "ValueError: boom"
    assert any_mode.executions == before + 1 and any_mode.seconds > 0


async def test_programs_run_as_nobody_except_when_unisolated(any_mode: Sandbox) -> None:
    result = await any_mode.run("import os; print(os.geteuid(), os.getegid(), os.getgroups())")
    nobody = runs_as_nobody(any_mode.mode)
    want = "65534 65534 []" if nobody else f"{os.geteuid()} {os.getegid()} {os.getgroups()}"
    assert result.stdout.strip() == want, result


HOSTILE = {
    "infinite loop": ("while True: pass", "timeout", "CPU"),
    "sleeping forever": ("import time; time.sleep(600)", "timeout", "wall clock"),
    "memory hog": ("x = bytearray(2 * 1024**3)", "memory", "256 MB"),
    "huge output": ("while True: print('x' * 1000)", "output", "20000 bytes"),
    "huge file": ("open('big', 'wb').write(b'0' * 4 * 1024**2)", "error", "File too large"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_programs_are_stopped_with_a_reason(any_mode: Sandbox, name: str) -> None:
    code, status, why = HOSTILE[name]
    result = await any_mode.run(code)
    assert result.status == status and why in result.reason, result
    assert result.seconds < LIMITS.wall_seconds + 3
    await _alive(any_mode)


async def test_a_fork_bomb_is_denied_and_leaves_nothing_behind(any_mode: Sandbox) -> None:
    if not runs_as_nobody(any_mode.mode):
        pytest.skip(
            "the process limit holds only for a program run as nobody: a fork bomb is not "
            "contained in the unisolated mode, or by bubblewrap without root"
        )
    # the bomb's processes work in a folder of a unique name, so they are told apart from
    # other programs nobody runs on this machine
    token = f"bomb-{uuid.uuid4().hex}"
    bomb = f"import os\nos.mkdir({token!r})\nos.chdir({token!r})\nwhile True:\n    os.fork()\n"
    result = await any_mode.run(bomb)
    assert result.status in ("error", "timeout", "killed"), result
    assert "BlockingIOError" in result.stderr or result.status != "error"
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _works_in(p, token)]
    assert leftovers == []
    await _alive(any_mode)


def _works_in(proc: Path, token: str) -> bool:
    try:
        return token in os.readlink(proc / "cwd")
    except OSError:
        return False  # gone, or a zombie (no working directory left)


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


async def test_as_nobody_the_users_files_are_out_of_reach(tmp_path: Path) -> None:
    unprivileged = sandbox_in("unprivileged")
    private = tmp_path / "private.txt"
    private.write_text("secret")
    private.chmod(0o600)
    read = await unprivileged.run(f"print(open({str(private)!r}).read())")
    assert read.status == "error" and "PermissionError" in read.reason, read
    target = tmp_path / "escaped.txt"
    write = await unprivileged.run(f"open({str(target)!r}, 'w').write('x')")
    assert write.status == "error" and "PermissionError" in write.reason and not target.exists()


async def test_a_root_ponder_without_bubblewrap_runs_programs_as_nobody(no_bwrap: None) -> None:
    if os.geteuid() != 0:
        pytest.skip("ponder runs as root here only")
    with pytest.warns(RuntimeWarning, match="as the user nobody"):
        sandbox = Sandbox(limits=LIMITS)
    assert sandbox.mode == "unprivileged"
    result = await sandbox.run("import os, resource; print(os.geteuid(), os.getgroups(), "
                               "resource.getrlimit(resource.RLIMIT_NPROC))")  # fmt: skip
    n = LIMITS.processes
    assert result.stdout == f"65534 [] ({n}, {n})\n", result
    assert result.isolation == "unprivileged"


def test_without_bubblewrap_code_runs_unisolated_only_when_opted_in(
    not_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as refused:
        Sandbox()
    message = str(refused.value)
    for said in ("refuses", "with your privileges", "apt-get install bubblewrap",
                 "--allow-unisolated-exec", f"{ALLOW_UNISOLATED_ENV}=1"):  # fmt: skip
        assert said in message, message
    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "0")
    with pytest.raises(ConfigError):
        Sandbox()
    with pytest.warns(RuntimeWarning, match="unisolated, with your privileges"):
        assert Sandbox(allow_unisolated=True).mode == "unisolated"
    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "1")
    with pytest.warns(RuntimeWarning, match="unisolated, with your privileges"):
        assert Sandbox().mode == "unisolated"
    # an explicit no wins over the environment
    with pytest.raises(ConfigError):
        Sandbox(allow_unisolated=False)


def test_a_root_ponder_with_no_interpreter_for_nobody_refuses(
    no_bwrap: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(sandbox_module, "_nobody_python", lambda python: None)
    with pytest.raises(ConfigError, match="as root, with no process limit") as refused:
        Sandbox()
    assert "apt-get install python3" in str(refused.value)
    with pytest.warns(RuntimeWarning, match="unisolated"):
        assert Sandbox(allow_unisolated=True).mode == "unisolated"


def test_on_macos_the_choice_is_to_opt_in(not_root: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(ConfigError, match="macOS has no bubblewrap") as refused:
        Sandbox()
    assert "--allow-unisolated-exec" in str(refused.value)


def test_settings_are_checked(no_bwrap: None) -> None:
    with pytest.raises(ConfigError):
        Limits(cpu_seconds=0)
    with pytest.raises(ConfigError, match=r"require_isolation.*apt-get install bubblewrap"):
        Sandbox(isolation="process", require_isolation=True, allow_unisolated=True)
    with pytest.raises(ConfigError, match="'bwrap' was asked for"):
        Sandbox(isolation="bwrap", allow_unisolated=True)
    with pytest.raises(ConfigError, match="isolation must be one of"):
        Sandbox(isolation="docker")  # type: ignore[arg-type]


def test_the_unprivileged_mode_needs_root(not_root: None) -> None:
    with pytest.raises(ConfigError, match="'unprivileged' needs ponder to run as root"):
        Sandbox(isolation="unprivileged", allow_unisolated=True)


async def test_without_bubblewrap_limits_still_hold(any_mode: Sandbox) -> None:
    if any_mode.mode == "bwrap":
        pytest.skip("the modes without bubblewrap")
    for name in ("infinite loop", "memory hog", "huge output", "sleeping forever"):
        code, status, why = HOSTILE[name]
        result = await any_mode.run(code)
        assert result.status == status and why in result.reason, (name, result)
    await _alive(any_mode)


async def test_both_ways_of_dropping_to_nobody_hold_the_process_limit(
    bwrap: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the program is run as nobody only when ponder runs as root")
    probe = (
        "import os, resource\n"
        "print(os.getresuid(), os.getgroups(), resource.getrlimit(resource.RLIMIT_NPROC))"
    )
    want = f"(65534, 65534, 65534) [] ({LIMITS.processes}, {LIMITS.processes})\n"
    assert (await bwrap.run(probe)).stdout == want  # prlimit and setpriv, where present
    monkeypatch.setattr(sandbox_module, "_drop_tools", lambda: None)
    assert (await bwrap.run(probe)).stdout == want  # the Python shim


async def test_the_result_channel_is_a_pipe_of_its_own(any_mode: Sandbox) -> None:
    code = "import os, sys; os.write(int(sys.argv[1]), b'verdict'); print('out')"
    result = await any_mode.run(code, channel=True)
    assert (result.status, result.channel, result.stdout) == ("ok", "verdict", "out\n"), result
    plain = await any_mode.run("import sys; print(sys.argv[1:])")
    assert plain.stdout == "[]\n" and plain.channel == ""


def test_allow_unisolated_opts_the_environment_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_UNISOLATED_ENV, raising=False)
    assert not sandbox_module.unisolated_allowed()
    # monkeypatch restores the variable afterwards, however allow_unisolated set it
    monkeypatch.setenv(ALLOW_UNISOLATED_ENV, "0")
    sandbox_module.allow_unisolated()
    assert os.environ[ALLOW_UNISOLATED_ENV] == "1"
    assert sandbox_module.unisolated_allowed()
