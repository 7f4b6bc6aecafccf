"""Scale-out measurements: the Ray executor's overhead per problem against the local
executor, and an engine pool over two real llama.cpp servers with one killed mid-run.

1. ``overhead``: the same evaluation (``--problems`` problems of a synthetic task,
   majority of ``--n``) through the local executor and through ``--executor ray``
   (``--actors`` actors, ``--per-actor`` problems in flight each), on the scripted
   engine, so what is timed is scheduling, pickling and the store, not a model. Each
   side runs ``--repeats`` times, alternating, into fresh stores; Ray's start-up (init
   and actor creation) is timed apart from the run. Prints the medians and the
   difference per problem, and checks both sides wrote the same records.
2. ``pool``: two ``llama_cpp.server`` processes with smollm2-135m on 127.0.0.1 behind
   one ``EnginePool``; ``ponder``'s demo task with majority of ``--n``; the second
   server is killed once ``--kill-after`` problems are recorded. Prints each server's
   requests served and failures, the errors (should be none) and the problems answered.

    python bench/scale_out.py overhead --problems 200 --repeats 3
    python bench/scale_out.py pool --n 4 --kill-after 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ponder.core.types import GenRequest, Message, Problem
from ponder.engines.models import model_path
from ponder.engines.openai import OpenAIEngine
from ponder.engines.pool import EnginePool
from ponder.engines.scripted import ScriptedEngine
from ponder.runs.job import SolveJob
from ponder.runs.ray_executor import RayExecutor
from ponder.runs.runner import evaluate
from ponder.runs.store import RunStore
from ponder.strategies import make_strategy
from ponder.tasks import make_task


@dataclass(frozen=True)
class SynthTask:
    """Problem i asks for i; the scripted engine answers right on most seeds."""

    size: int
    name: str = "synth"

    def load(self, limit: int | None = None) -> list[Problem]:
        return [Problem(f"p{i}", f"Repeat {i}.", str(i)) for i in range(self.size)]

    def messages(self, problem: Problem) -> tuple[Message, ...]:
        return (Message("user", problem.question),)

    def extract(self, text: str) -> str | None:
        return text.rsplit(" ", 1)[-1] or None

    def is_correct(self, predicted: str | None, problem: Problem) -> bool:
        return predicted == problem.answer


def _answer(request: GenRequest, _index: int) -> str:
    assert request.messages is not None
    number = request.messages[-1].content.split()[1].rstrip(".")
    return f"the answer is {number if (request.seed or 0) % 5 else 0}"


def scripted() -> ScriptedEngine:
    return ScriptedEngine(_answer, name="synth-engine")


def _records(path: Path) -> list[Any]:
    with RunStore(path, create=False) as store:
        return [(r.problem_id, r.answer, r.candidates, r.usage) for r in store.records()]


async def _timed_run(args: argparse.Namespace, out: Path, ray: bool) -> tuple[float, float]:
    task = SynthTask(args.problems)
    strategy = make_strategy("majority", {"n": args.n})
    startup = 0.0
    executor = None
    if ray:
        executor = RayExecutor(scripted, actors=args.actors, per_actor=args.per_actor,
                               num_cpus=0.5)  # fmt: skip
        t0 = time.perf_counter()
        await executor.start(SolveJob(task=task, strategy=strategy, max_tokens=16, seed=0))
        startup = time.perf_counter() - t0  # evaluate's own start() finds it running
    t0 = time.perf_counter()
    await evaluate(
        task=task,
        problems=task.load(None),
        strategy=strategy,
        engine=None if ray else scripted(),
        store=out,
        concurrency=args.actors * args.per_actor,
        max_tokens=16,
        progress=False,
        executor=executor,
    )
    return time.perf_counter() - t0, startup


def overhead(args: argparse.Namespace) -> None:
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    local: list[float] = []
    remote: list[float] = []
    startups: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            t_local, _ = asyncio.run(_timed_run(args, Path(tmp, f"local{k}.db"), ray=False))
            t_ray, start = asyncio.run(_timed_run(args, Path(tmp, f"ray{k}.db"), ray=True))
            local.append(t_local)
            remote.append(t_ray)
            startups.append(start)
            same = _records(Path(tmp, f"local{k}.db")) == _records(Path(tmp, f"ray{k}.db"))
            print(f"run {k}: local {t_local:.2f}s, ray {t_ray:.2f}s (+{start:.2f}s start), "
                  f"same records: {same}")  # fmt: skip
    ray.shutdown()
    lo, re_ = statistics.median(local), statistics.median(remote)
    p = args.problems
    print(f"\n{p} problems, majority of {args.n}, {args.actors} actor(s) x {args.per_actor} "
          f"in flight; medians of {args.repeats}")  # fmt: skip
    print(f"local executor: {lo:.3f}s = {1000 * lo / p:.2f} ms/problem")
    print(
        f"ray executor:   {re_:.3f}s = {1000 * re_ / p:.2f} ms/problem "
        f"(start-up {statistics.median(startups):.2f}s once per run, not included)"
    )
    print(f"ray overhead:   {1000 * (re_ - lo) / p:.2f} ms/problem ({re_ / lo:.1f}x local)")


def _server(model: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--host",
               "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "1"]  # fmt: skip
    with log.open("wb") as f:
        return subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT)


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer in 120 s")


def pool(args: argparse.Namespace) -> None:
    import socket

    model = str(model_path("smollm2-135m"))
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    with tempfile.TemporaryDirectory() as tmp:
        procs = [_server(model, p, Path(tmp, f"s{i}.log")) for i, p in enumerate(ports)]
        try:
            for u, proc in zip(urls, procs, strict=True):
                _wait(u, proc)
            members = [OpenAIEngine("smollm2", base_url=u, max_retries=1) for u in urls]
            engines = EnginePool(members, labels=["server A", "server B (killed)"])
            store = Path(tmp, "pool.db")
            task = make_task("demo")

            async def killer() -> int:
                while True:
                    with RunStore(store) as s:
                        if len(s) >= args.kill_after:
                            done = len(s)
                            break
                    await asyncio.sleep(0.1)
                procs[1].kill()
                return done

            async def go() -> Any:
                k = asyncio.create_task(killer())
                t0 = time.perf_counter()
                summary = await evaluate(
                    task=task, problems=task.load(None),
                    strategy=make_strategy("majority", {"n": args.n}), engine=engines,
                    store=store, max_tokens=64, concurrency=4, progress=False,
                )  # fmt: skip
                seconds = time.perf_counter() - t0
                await engines.aclose()
                return summary, await k, seconds

            summary, done_at_kill, seconds = asyncio.run(go())
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    print(f"demo task ({summary.total} problems), majority of {args.n}, two llama.cpp "
          f"servers (smollm2-135m, 1 thread each), server B killed after {done_at_kill} "
          f"problems were recorded; {seconds:.1f}s")  # fmt: skip
    for m in engines.stats():
        state = "up" if m.healthy else "down"
        print(f"  {m.label}: {m.served} requests served, {m.failures} failed over, {state} "
              "at the end")  # fmt: skip
    print(
        f"answered {summary.graded}/{summary.total}, errors {summary.errors}, "
        f"accuracy {summary.accuracy:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--problems", type=int, default=200)
    o.add_argument("--n", type=int, default=4)
    o.add_argument("--actors", type=int, default=1)
    o.add_argument("--per-actor", type=int, default=4)
    o.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("pool")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--kill-after", type=int, default=4)
    args = parser.parse_args()
    overhead(args) if args.what == "overhead" else pool(args)


if __name__ == "__main__":
    main()
