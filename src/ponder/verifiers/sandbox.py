"""Run untrusted Python (a model's program) with limits, inside bubblewrap when it is there.

``Sandbox.run(code)`` writes ``code`` to a fresh temporary folder and runs it with the
interpreter that runs ponder, under these limits, and answers with an ``ExecResult``
whose ``status`` says how it ended (``ok``, ``error``, ``timeout``, ``memory``,
``output``, ``killed``) and, when not ``ok``, why. It never raises for what the program
does; only a sandbox that cannot start raises ``ConfigError``.

Isolation, with bubblewrap (Debian package ``bubblewrap``, ``isolation == "bwrap"``):
new user, PID, network, IPC and UTS namespaces (no network at all: only a loopback
device with nothing on it); a filesystem of the system's read-only ``/usr``, ``/lib``,
``/bin`` and the interpreter's own installation, a private ``/tmp`` and ``/dev``, and the
temporary folder as the only writable place (mounted at ``/sandbox``, the working
directory); nothing else of the host (home folders, the project, ``/work``) exists
inside. When ponder runs as root, the program runs as ``nobody`` so that the process
limit holds (the kernel exempts root from it): util-linux's ``prlimit`` and ``setpriv``
set the limit and drop to ``nobody`` (a short Python shim does where they are missing,
at the cost of a second interpreter start). The process tree dies with its runner.

Limits in every mode (``Limits``): CPU seconds and address space per process, processes
(``RLIMIT_NPROC``, enforced for a non-root user), the size of any file written, open
files, the bytes of output kept (past ``max_output`` the program is killed), and a wall
clock after which the whole process group is killed.

Without bubblewrap (``isolation == "process"``) the program runs in a subprocess with
the same limits, a cleared environment and the temporary folder as its working
directory, and ponder warns once that isolation is weaker: no network or filesystem
isolation. ``require_isolation=True`` refuses to run that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ponder.errors import ConfigError

__all__ = ["ExecResult", "Limits", "Sandbox"]

NOBODY = 65534
Status = Literal["ok", "error", "timeout", "memory", "output", "killed"]


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
    """How one execution ended. ``reason`` is empty when ``status == "ok"``."""

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _bwrap() -> str | None:
    return shutil.which("bwrap")


@dataclass
class Sandbox:
    """Runs Python programs under ``limits``; see the module doc.

    ``isolation``: ``"auto"`` (bubblewrap when it is installed and works, else a
    limited subprocess with a warning), ``"bwrap"`` or ``"process"``.
    """

    limits: Limits = field(default_factory=Limits)
    isolation: Literal["auto", "bwrap", "process"] = "auto"
    require_isolation: bool = False
    python: str = sys.executable

    def __post_init__(self) -> None:
        mode = self.isolation
        if mode == "auto":
            mode = "bwrap" if _bwrap() is not None and _bwrap_works() else "process"
        if mode == "bwrap" and _bwrap() is None:
            raise ConfigError("bubblewrap is not installed: apt-get install bubblewrap")
        if mode == "process":
            if self.require_isolation:
                raise ConfigError(
                    "no working bubblewrap, and require_isolation is set: install the Debian "
                    "package bubblewrap (and allow unprivileged user namespaces)"
                )
            why = (
                "as asked" if self.isolation == "process" else "bubblewrap is missing or cannot run"
            )
            warnings.warn(
                f"ponder sandbox: code runs in a plain subprocess ({why}) with resource limits "
                "only: isolation is weaker (no network or filesystem isolation); install "
                "bubblewrap (Debian package bubblewrap) for real isolation",
                RuntimeWarning,
                stacklevel=2,
            )
        self.mode: Literal["bwrap", "process"] = mode
        self.executions = 0
        self.seconds = 0.0

    async def run(self, code: str, *, stdin: str = "") -> ExecResult:
        """Run ``code`` (a Python program) and report how it ended."""
        with tempfile.TemporaryDirectory(prefix="ponder-sandbox-") as tmp:
            folder = Path(tmp)
            (folder / "main.py").write_text(code, encoding="utf-8")
            drop = os.geteuid() == 0 and (self.mode == "bwrap" or _reachable_by_others(self.python))
            if drop:
                os.chown(folder, NOBODY, NOBODY)
                os.chown(folder / "main.py", NOBODY, NOBODY)
            command = self._command(folder, drop)
            t0 = time.perf_counter()
            try:
                result = await self._execute(command, folder, stdin, drop)
            finally:
                self.executions += 1
                self.seconds += time.perf_counter() - t0
            return result

    # -- the command ---------------------------------------------------------------------

    def _command(self, folder: Path, drop: bool) -> list[str]:
        python = ["-I", "-B", "main.py"]  # isolated mode: no user site, no env, no .pyc
        if self.mode == "process":
            return [self.python, *python]
        launcher: list[str] = []
        if drop and (tools := _drop_tools()) is not None:
            # bubblewrap runs as root (it can read the interpreter wherever it lives); the
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
                "os.execv(sys.executable,[sys.executable,'-I','-B','main.py'])"
            )
            python = ["-I", "-c", snippet, str(self.limits.processes)]
        prefix = Path(sys.base_prefix).resolve()
        exe = Path(self.python).resolve()
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
        if drop and self.mode == "process":
            resource.setrlimit(resource.RLIMIT_NPROC, (lim.processes,) * 2)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    async def _execute(
        self, command: list[str], folder: Path, stdin: str, drop: bool
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
                preexec_fn=lambda: self._preexec(drop),
            )
        except OSError as e:
            raise ConfigError(f"the sandbox could not start {command[0]}: {e}") from e
        over = asyncio.Event()
        kept = {"stdout": bytearray(), "stderr": bytearray()}

        async def pump(stream: asyncio.StreamReader | None, name: str) -> None:
            # reads to the end even past the limit (discarding), so the pipe closes and
            # the process can be reaped once it is killed
            assert stream is not None
            while chunk := await stream.read(65536):
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

        pumps = asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"), feed())
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
            pumps.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumps
        seconds = time.perf_counter() - t0
        out = kept["stdout"].decode(errors="replace")
        err = kept["stderr"].decode(errors="replace")
        code = proc.returncode
        if reason is None:
            reason = _classify(code, err, lim, bwrap=self.mode == "bwrap")
        status, why = reason
        return ExecResult(status, code, out, err, seconds, why)


def _drop_tools() -> tuple[str, str] | None:
    """util-linux's ``prlimit`` and ``setpriv`` in the system folders the sandbox mounts."""
    found = [shutil.which(name, path="/usr/bin:/bin") for name in ("prlimit", "setpriv")]
    if found[0] is None or found[1] is None:
        return None
    return found[0], found[1]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _classify(code: int | None, stderr: str, lim: Limits, *, bwrap: bool) -> tuple[Status, str]:
    if code == 0:
        return "ok", ""
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    sig = None
    if code is not None and code < 0:
        sig = -code
    elif bwrap and code is not None and code > 128:
        sig = code - 128  # bubblewrap exits 128 + the signal that killed its child
    if sig == signal.SIGXCPU:
        return "timeout", f"used more than {lim.cpu_seconds} s of CPU"
    if sig == signal.SIGXFSZ:
        return "output", f"wrote a file larger than {lim.file_mb} MB"
    if "MemoryError" in stderr:
        return "memory", f"ran out of its {lim.memory_mb} MB of memory ({tail})"
    if sig is not None:
        return "killed", f"killed by signal {signal.Signals(sig).name}"
    return "error", tail or f"exited with status {code}"


def _reachable_by_others(path: str) -> bool:
    """Whether a user other than the owner can reach and run ``path`` (every folder above
    it searchable by others): then a root ponder can run the program as nobody."""
    p = Path(path).resolve()
    for folder in [*p.parents]:
        if not folder.stat().st_mode & 0o001:
            return False
    return bool(p.stat().st_mode & 0o001)


_BWRAP_OK: bool | None = None


def _bwrap_works() -> bool:
    """Whether bubblewrap can make its namespaces here (it cannot in some containers)."""
    global _BWRAP_OK
    if _BWRAP_OK is None:
        import subprocess

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
