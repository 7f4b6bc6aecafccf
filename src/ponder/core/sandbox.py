"""Run untrusted Python (a model's program) with limits, never unguarded with the user's
privileges.

``Sandbox.run(code)`` writes ``code`` to a fresh temporary folder and runs it under these
limits, and answers with an ``ExecResult`` whose ``status`` says how it ended (``ok``,
``error``, ``timeout``, ``memory``, ``output``, ``killed``) and, when not ``ok``, why,
and whose ``isolation`` names the mode it ran in. It never raises for what the program
does; only a sandbox that cannot start, or may not, raises ``ConfigError``.

Three isolation modes (``Sandbox.mode``, recorded with every execution):

- ``"bwrap"``, with bubblewrap (Debian package ``bubblewrap``): new user, PID, network,
  IPC and UTS namespaces (no network at all: only a loopback device with nothing on
  it); a filesystem of the system's read-only ``/usr``, ``/lib``, ``/bin`` and the
  interpreter's own installation, a private ``/tmp`` and ``/dev``, and the temporary
  folder as the only writable place (mounted at ``/sandbox``, the working directory);
  nothing else of the host (home folders, the project, ``/work``) exists inside. When
  ponder runs as root, the program runs as ``nobody`` so that the process limit holds
  (the kernel exempts root from it): util-linux's ``prlimit`` and ``setpriv`` set the
  limit and drop to ``nobody`` (a short Python shim does where they are missing, at the
  cost of a second interpreter start). The process tree dies with its runner.
- ``"unprivileged"``, without bubblewrap when ponder runs as root: a subprocess dropped
  to ``nobody`` (no groups) under the process limit, with an interpreter ``nobody`` can
  run: ponder's own when nobody can start it, else the system's (``/usr/bin/python3``;
  a root ponder under ``/root/.pyenv`` is the usual case). Where util-linux's
  ``unshare`` can make one, it gets a PID namespace and a ``/proc`` of its own (it sees
  and signals only its own processes, and nothing it starts outlives it, not even as a
  zombie). The program cannot touch the user's files or other processes, but it can
  read what is readable by everyone and reach the network. ponder warns once.
- ``"unisolated"``: a subprocess with the user's own privileges (only the limits below
  hold). It runs only when the user opted in: ``Sandbox(allow_unisolated=True)``, the
  command-line flag ``--allow-unisolated-exec`` or the environment variable
  ``PONDER_ALLOW_UNISOLATED_EXEC=1``; otherwise the sandbox refuses with a
  ``ConfigError`` that says why and what to install. A program run this way can do
  whatever the user can, forging its test results included; ponder warns once.

``isolation="auto"`` (the default) takes the first of these that may run here;
``"bwrap"``, ``"unprivileged"`` and ``"unisolated"`` ask for one (a mode that cannot
run here is a ``ConfigError``); ``"process"`` is any mode without bubblewrap
(unprivileged where possible). ``require_isolation=True`` accepts bubblewrap only.
macOS has no bubblewrap: there a non-root ponder runs model-written code only when the
user opts in to running it unisolated.

Limits in every mode (``Limits``): CPU seconds and address space per process, processes
(``RLIMIT_NPROC``, enforced for a non-root user, so set only where the program runs as
``nobody``), the size of any file written, open files, the bytes of output kept (past
``max_output`` the program is killed), and a wall clock after which the whole process
group is killed.

``run(code, channel=True)`` gives the program one more pipe, whose write end's number is
its ``sys.argv[1]``; what it writes there comes back as ``ExecResult.channel``, apart
from its standard output and error. The test harness (``ponder.verifiers.code_exec``)
reports verdicts on it from a process the candidate's code never runs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ponder.core.errors import ConfigError

__all__ = [
    "ALLOW_UNISOLATED_ENV",
    "ExecResult",
    "Isolation",
    "Limits",
    "Mode",
    "Sandbox",
    "allow_unisolated",
    "isolation_mode",
    "unisolated_allowed",
]

NOBODY = 65534
Status = Literal["ok", "error", "timeout", "memory", "output", "killed"]
Isolation = Literal["auto", "bwrap", "unprivileged", "unisolated", "process"]
"""What a ``Sandbox`` is asked for (see the module doc)."""
Mode = Literal["bwrap", "unprivileged", "unisolated"]
"""How programs actually run (see the module doc)."""
ISOLATIONS: tuple[str, ...] = ("auto", "bwrap", "unprivileged", "unisolated", "process")

ALLOW_UNISOLATED_ENV = "PONDER_ALLOW_UNISOLATED_EXEC"
"""Set to 1 to let model-written code run with the user's privileges when nothing
isolates it better (``--allow-unisolated-exec`` sets it)."""

SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")
"""Where an interpreter ``nobody`` can run is looked for when ponder's own is closed to
other users."""

CHANNEL_BYTES = 8 * 2**20
"""The most a program may write to its result channel (``run(channel=True)``)."""


@dataclass(frozen=True)
class Limits:
    """What one execution may use."""

    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    open_files: int = 64
    max_output: int = 64_000

    def __post_init__(self) -> None:
        if min(self.cpu_seconds, self.memory_mb, self.processes, self.file_mb) < 1:
            raise ConfigError("sandbox limits must be positive")
        if not self.wall_seconds > 0 or self.max_output < 1 or self.open_files < 8:
            raise ConfigError("wall_seconds must be > 0, max_output >= 1, open_files >= 8")


@dataclass(frozen=True)
class ExecResult:
    """How one execution ended. ``reason`` is empty when ``status == "ok"``;
    ``isolation`` is the mode it ran in; ``channel`` what the program wrote to its
    result channel (``run(channel=True)``)."""

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    reason: str = ""
    isolation: str = ""
    channel: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def unisolated_allowed() -> bool:
    """Whether the environment opts in to unisolated execution (``ALLOW_UNISOLATED_ENV``
    set to 1, true or yes)."""
    return os.environ.get(ALLOW_UNISOLATED_ENV, "").strip().lower() in ("1", "true", "yes")


def allow_unisolated() -> None:
    """Opt this process in to unisolated execution (``--allow-unisolated-exec``): it
    sets ``ALLOW_UNISOLATED_ENV`` in the environment, which carries the opt-in to every
    sandbox the process makes and to the processes it starts (Ray workers among them)."""
    os.environ[ALLOW_UNISOLATED_ENV] = "1"


def isolation_mode(
    isolation: str = "auto",
    *,
    require_isolation: bool = False,
    allow_unisolated: bool | None = None,
    python: str = sys.executable,
) -> tuple[Mode, str]:
    """The mode a sandbox asked for ``isolation`` runs in here, and the interpreter that
    runs its programs; ``ConfigError`` (why, and what to do) when it may not run at all.
    ``allow_unisolated`` None: the environment decides (``unisolated_allowed``)."""
    if isolation not in ISOLATIONS:
        raise ConfigError(
            f"sandbox isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}"
        )
    if isolation in ("auto", "bwrap") and _bwrap() is not None and _bwrap_works():
        return "bwrap", python
    if isolation == "bwrap" or require_isolation:
        raise ConfigError(_no_bwrap(isolation == "bwrap"))
    root = os.geteuid() == 0
    if isolation != "unisolated" and root:
        found = _nobody_python(python)
        if found is not None:
            return "unprivileged", found
    if isolation == "unprivileged":
        raise ConfigError(
            "sandbox isolation 'unprivileged' needs ponder to run as root (to drop to the "
            f"user nobody){_no_nobody_python(python) if root else ''}"
        )
    allowed = unisolated_allowed() if allow_unisolated is None else allow_unisolated
    if not allowed:
        raise ConfigError(_refusal(python, root))
    return "unisolated", python


def _no_bwrap(asked: bool) -> str:
    why = "bubblewrap is not installed" if _bwrap() is None else "bubblewrap cannot run here"
    need = "sandbox isolation 'bwrap' was asked for" if asked else "require_isolation is set"
    return (
        f"{why}, and {need}: install the Debian package (apt-get install bubblewrap) and, "
        "without root, allow unprivileged user namespaces"
    )


def _no_nobody_python(python: str) -> str:
    return (
        f", and a Python interpreter nobody can run: ponder's own ({python}) sits in a "
        f"folder other users cannot enter, and none of {', '.join(SYSTEM_PYTHONS)} runs "
        "for nobody (apt-get install python3)"
    )


def _refusal(python: str, root: bool) -> str:
    """Why model-written code may not run here, and the ways out."""
    missing = "bubblewrap is not installed" if _bwrap() is None else "bubblewrap cannot run here"
    if sys.platform == "darwin":
        who = "macOS has no bubblewrap, so model-written code would run with your privileges"
        fix = (
            "The choice on macOS is to opt in to that with --allow-unisolated-exec (or "
            f"{ALLOW_UNISOLATED_ENV}=1), or to run ponder in a Linux container with bubblewrap."
        )
    else:
        who = f"{missing}, so model-written code would run with your privileges"
        if root:
            who += (
                " (as root, with no process limit: ponder cannot drop to nobody"
                f"{_no_nobody_python(python)})"
            )
        fix = (
            "Install bubblewrap (apt-get install bubblewrap; without root, allow unprivileged "
            "user namespaces), or opt in to running it unisolated with "
            f"--allow-unisolated-exec or {ALLOW_UNISOLATED_ENV}=1."
        )
    return f"ponder refuses to run model-written code unisolated: {who}. {fix}"


@dataclass
class Sandbox:
    """Runs Python programs under ``limits``; see the module doc.

    ``isolation``: ``"auto"`` (the best mode that may run here), ``"bwrap"``,
    ``"unprivileged"``, ``"unisolated"`` or ``"process"`` (no bubblewrap);
    ``require_isolation`` accepts bubblewrap only; ``allow_unisolated`` opts in to the
    unisolated mode (None: ``PONDER_ALLOW_UNISOLATED_EXEC`` decides). ``mode`` is the
    mode chosen and ``interpreter`` the Python that runs the programs.
    """

    limits: Limits = field(default_factory=Limits)
    isolation: Isolation = "auto"
    require_isolation: bool = False
    allow_unisolated: bool | None = None
    python: str = sys.executable

    def __post_init__(self) -> None:
        mode, interpreter = isolation_mode(
            self.isolation,
            require_isolation=self.require_isolation,
            allow_unisolated=self.allow_unisolated,
            python=self.python,
        )
        if mode == "unprivileged":
            warnings.warn(
                "ponder sandbox: bubblewrap is missing or cannot run, so code runs in a "
                f"subprocess as the user nobody ({interpreter}) with resource limits: "
                "isolation is weaker (it can reach the network and files everyone may "
                "read); install bubblewrap (apt-get install bubblewrap) for real isolation",
                RuntimeWarning,
                stacklevel=2,
            )
        elif mode == "unisolated":
            warnings.warn(
                "ponder sandbox: code runs unisolated, with your privileges and resource "
                "limits only, as you opted in: it can do anything you can, forge its test "
                "results included; install bubblewrap (apt-get install bubblewrap) for real "
                "isolation",
                RuntimeWarning,
                stacklevel=2,
            )
        self.mode: Mode = mode
        self.interpreter = interpreter
        self.pid_namespace = mode == "unprivileged" and _unshare_works()
        self.executions = 0
        self.seconds = 0.0

    @property
    def drops_privileges(self) -> bool:
        """Whether programs run as ``nobody`` (ponder is root, and the mode isolates)."""
        return os.geteuid() == 0 and self.mode != "unisolated"

    async def run(self, code: str, *, stdin: str = "", channel: bool = False) -> ExecResult:
        """Run ``code`` (a Python program) and report how it ended; with ``channel``, give
        it a result pipe (its number in ``sys.argv[1]``; see the module doc)."""
        with tempfile.TemporaryDirectory(prefix="ponder-sandbox-") as tmp:
            folder = Path(tmp)
            (folder / "main.py").write_text(code, encoding="utf-8")
            drop = self.drops_privileges
            if drop:
                os.chown(folder, NOBODY, NOBODY)
                os.chown(folder / "main.py", NOBODY, NOBODY)
            pipe = os.pipe() if channel else None
            args = [] if pipe is None else [str(pipe[1])]
            command = self._command(folder, drop, args)
            t0 = time.perf_counter()
            try:
                result = await self._execute(command, folder, stdin, drop, pipe)
            finally:
                self.executions += 1
                self.seconds += time.perf_counter() - t0
            return result

    # -- the command ---------------------------------------------------------------------

    def _command(self, folder: Path, drop: bool, args: list[str]) -> list[str]:
        # isolated mode: no user site, no environment, no .pyc written
        python = ["-I", "-B", "main.py", *args]
        if self.mode == "unisolated" or (self.mode == "unprivileged" and not self.pid_namespace):
            return [self.interpreter, *python]
        launcher: list[str] = []
        if drop and (tools := _drop_tools()) is not None:
            # the launcher runs as root (it can read the interpreter wherever it lives); the
            # program runs as nobody, under a process limit the kernel enforces for it;
            # util-linux's prlimit and setpriv do that without a second interpreter start
            prlimit, setpriv = tools
            launcher = [
                prlimit, f"--nproc={self.limits.processes}",
                setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            ]  # fmt: skip
        elif drop:
            # the same with the interpreter itself, where those tools are missing
            snippet = (
                "import os,resource,sys;n=int(sys.argv[1]);"
                "resource.setrlimit(resource.RLIMIT_NPROC,(n,n));os.setgroups([]);"
                f"os.setgid({NOBODY});os.setuid({NOBODY});"
                "os.execv(sys.executable,[sys.executable,'-I','-B','main.py',*sys.argv[2:]])"
            )
            python = ["-I", "-c", snippet, str(self.limits.processes), *args]
        exe = Path(self.interpreter).resolve()
        if self.mode == "unprivileged":
            # a PID namespace of its own, with its own /proc: the program sees and signals
            # only its processes, and whatever it starts dies, and is reaped, with it. A
            # shell is its init (PID 1), since the kernel spares PID 1 the signals of the
            # limits (SIGXCPU); it passes on how the program ended as 128 + the signal
            unshare = [str(_unshare()), "--pid", "--fork", "--kill-child", "--mount-proc"]
            init = ["/bin/sh", "-c", '"$@"; exit $?', "init"]
            return [*unshare, *init, *launcher, str(exe), *python]
        prefix = Path(sys.base_prefix).resolve()
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        if not drop:
            namespaces.append("--unshare-user")
        cmd = [
            str(_bwrap()),
            *namespaces,
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin",
            "--setenv", "HOME", "/sandbox",
            "--proc", "/proc",
            "--dev", "/dev",
            "--perms", "1777", "--tmpfs", "/tmp",
            "--bind", str(folder), "/sandbox",
            "--chdir", "/sandbox",
        ]  # fmt: skip
        for path in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/alternatives"):
            cmd += ["--ro-bind-try", path, path]
        for root in sorted({str(prefix), str(exe.parent.parent)}):
            if not root.startswith(("/usr", "/lib", "/bin")):
                # folders above it made searchable, so the program's user reaches it
                for above in reversed(Path(root).parents[:-1]):
                    cmd += ["--perms", "0755", "--dir", str(above)]
                cmd += ["--ro-bind", root, root]
        return [*cmd, *launcher, str(exe), *python]

    # -- running -------------------------------------------------------------------------

    def _preexec(self, drop: bool) -> None:
        lim = self.limits
        mem = lim.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_CPU, (lim.cpu_seconds, lim.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (lim.file_mb * 2**20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lim.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop and self.mode == "unprivileged" and not self.pid_namespace:
            _become_nobody(lim.processes)

    async def _execute(
        self,
        command: list[str],
        folder: Path,
        stdin: str,
        drop: bool,
        pipe: tuple[int, int] | None,
    ) -> ExecResult:
        lim = self.limits
        env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "LANG": "C.UTF-8"}
        t0 = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=folder,
                env=env,
                start_new_session=True,
                pass_fds=() if pipe is None else (pipe[1],),
                preexec_fn=lambda: self._preexec(drop),
            )
        except OSError as e:
            if pipe is not None:
                os.close(pipe[0])
            raise ConfigError(f"the sandbox could not start {command[0]}: {e}") from e
        finally:
            if pipe is not None:
                os.close(pipe[1])  # the program holds the write end now; EOF when it is gone
        over = asyncio.Event()
        kept = {"stdout": bytearray(), "stderr": bytearray(), "channel": bytearray()}

        async def pump(stream: asyncio.StreamReader | None, name: str) -> None:
            # reads to the end even past the limit (discarding), so the pipe closes and
            # the process can be reaped once it is killed
            assert stream is not None
            while chunk := await stream.read(65536):
                if name == "channel":
                    room = CHANNEL_BYTES - len(kept["channel"])
                else:
                    room = lim.max_output - len(kept["stdout"]) - len(kept["stderr"])
                kept[name] += chunk[: max(room, 0)]
                if len(chunk) > room:
                    over.set()

        async def feed() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin.encode())
                await proc.stdin.drain()
            proc.stdin.close()

        reader, transport = None, None
        if pipe is not None:
            reader, transport = await _read_end(pipe[0])
        streams = [pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"), feed()]
        if reader is not None:
            streams.append(pump(reader, "channel"))
        pumps = asyncio.gather(*streams)
        waiter = asyncio.ensure_future(proc.wait())
        overflow = asyncio.ensure_future(over.wait())
        reason: tuple[Status, str] | None = None
        try:
            done, _ = await asyncio.wait(
                {waiter, overflow}, timeout=lim.wall_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if overflow in done:
                reason = ("output", f"more than {lim.max_output} bytes of output")
            elif waiter not in done:
                reason = ("timeout", f"still running after {lim.wall_seconds:g} s (wall clock)")
        finally:
            # whatever happened (even cancellation), nothing the program started survives
            _kill_group(proc.pid)
            await waiter
            overflow.cancel()
            # what the program wrote just before it ended may still be in the pipes: read
            # it (the pipes close once its processes are gone), but never wait for long
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pumps), 2.0)
            pumps.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumps
            if transport is not None:
                transport.close()
        seconds = time.perf_counter() - t0
        out = kept["stdout"].decode(errors="replace")
        err = kept["stderr"].decode(errors="replace")
        code = proc.returncode
        if reason is None:
            reason = _classify(code, err, lim, launcher=self.mode == "bwrap" or self.pid_namespace)
        status, why = reason
        channel = kept["channel"].decode(errors="replace")
        return ExecResult(status, code, out, err, seconds, why, self.mode, channel)


async def _read_end(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """An asyncio reader of the read end ``fd`` of a pipe (closed with the transport)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader, transport


def _become_nobody(processes: int) -> None:
    """In a child before exec: the user nobody, no groups, at most ``processes``."""
    resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


def _drop_tools() -> tuple[str, str] | None:
    """util-linux's ``prlimit`` and ``setpriv`` in the system folders the sandbox mounts."""
    found = [shutil.which(name, path="/usr/bin:/bin") for name in ("prlimit", "setpriv")]
    if found[0] is None or found[1] is None:
        return None
    return found[0], found[1]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _classify(code: int | None, stderr: str, lim: Limits, *, launcher: bool) -> tuple[Status, str]:
    if code == 0:
        return "ok", ""
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    sig = None
    if code is not None and code < 0:
        sig = -code
    elif launcher and code is not None and code > 128:
        # bubblewrap, and the init shell of a PID namespace, exit with 128 + the signal
        # that killed the program
        sig = code - 128
    if sig == signal.SIGXCPU:
        return "timeout", f"used more than {lim.cpu_seconds} s of CPU"
    if sig == signal.SIGXFSZ:
        return "output", f"wrote a file larger than {lim.file_mb} MB"
    if "MemoryError" in stderr:
        return "memory", f"ran out of its {lim.memory_mb} MB of memory ({tail})"
    if sig is not None:
        return "killed", f"killed by signal {signal.Signals(sig).name}"
    return "error", tail or f"exited with status {code}"


@functools.cache
def _nobody_python(preferred: str) -> str | None:
    """The first of ``preferred`` and ``SYSTEM_PYTHONS`` that the user nobody can start
    with what the test harness imports (tried for real, once), or None."""
    seen: set[Path] = set()
    for python in (preferred, *SYSTEM_PYTHONS):
        path = Path(python)
        with contextlib.suppress(OSError):
            path = path.resolve()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        try:
            proc = subprocess.run(
                [python, "-I", "-c", "import ctypes, json, math, traceback"],
                capture_output=True,
                cwd="/",
                timeout=20,
                preexec_fn=lambda: _become_nobody(64),
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.returncode == 0:
            return python
    return None


def _unshare() -> str | None:
    return shutil.which("unshare", path="/usr/bin:/bin")


@functools.cache
def _unshare_works() -> bool:
    """Whether util-linux's ``unshare`` can give a program a PID namespace and a /proc of
    its own here (root only; some containers forbid it)."""
    path = _unshare()
    if os.geteuid() != 0 or path is None:
        return False
    try:
        proc = subprocess.run(
            [path, "--pid", "--fork", "--kill-child", "--mount-proc", "true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


_BWRAP_OK: bool | None = None


def _bwrap_works() -> bool:
    """Whether bubblewrap can make its namespaces here (it cannot in some containers)."""
    global _BWRAP_OK
    if _BWRAP_OK is None:
        path = _bwrap()
        try:
            proc = subprocess.run(
                [str(path), "--unshare-all", "--ro-bind", "/", "/", "true"],
                capture_output=True,
                timeout=10,
            )
            _BWRAP_OK = proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _BWRAP_OK = False
    return _BWRAP_OK
