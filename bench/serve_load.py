"""Load on `ponder serve`, and the server's overhead per request, side by side.

The server runs in this process under uvicorn on 127.0.0.1 with the scripted engine
behind it (each sample waits ``--engine-delay`` seconds, standing in for a model), so
what is measured is ponder's HTTP, validation, admission and accounting, not a model.

1. Load: ``--clients`` concurrent clients send chat completions (strategy
   ``majority-N``) back to back for ``--seconds``; the report gives requests per
   second, p50/p99 latency of the answered requests, the 429s (intended: more clients
   than ``--concurrency`` + ``--queue`` can hold) and any other error (there should be
   none).
2. Overhead: one client, sequential requests through the server, against the same
   strategy called in-process on the same engine (``ponder.answer_question``),
   alternating, ``--repeats`` each; the median per-request difference is the server's
   overhead.

    python bench/serve_load.py --clients 32 --seconds 10 --concurrency 8 --queue 8
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import threading
import time
from collections import Counter
from typing import Any

import httpx
import uvicorn

from ponder import answer_question
from ponder.engines.scripted import ScriptedEngine
from ponder.serve import ServeSettings, create_app
from ponder.serve.chat import ChatTask

MODEL = "scripted"
QUESTION = "What is 2 + 2?"


def _engine(delay: float) -> ScriptedEngine:
    return ScriptedEngine(lambda r, i: f"two and two make \\boxed{{{4 + i % 2}}}", delay=delay)


def _serve(app: Any) -> tuple[uvicorn.Server, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


async def _load(url: str, clients: int, seconds: float, n: int) -> dict[str, Any]:
    body = {"model": f"majority-{n}/{MODEL}", "messages": [{"role": "user", "content": QUESTION}]}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def client() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await http.post("/v1/chat/completions", json=body)
                except httpx.HTTPError as e:
                    errors[type(e).__name__] += 1
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                elif r.status_code == 429:
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")) / 20)

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "answered": statuses[200],
        "rps": statuses[200] / wall,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "statuses": dict(statuses),
        "transport_errors": dict(errors),
    }


async def _overhead(url: str, engine: ScriptedEngine, n: int, repeats: int) -> tuple[float, float]:
    body = {"model": f"majority-{n}/{MODEL}", "messages": [{"role": "user", "content": QUESTION}]}
    served: list[float] = []
    direct: list[float] = []
    task = ChatTask()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = await http.post("/v1/chat/completions", json=body)
            served.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            t0 = time.perf_counter()
            await answer_question(
                QUESTION, engine=engine, strategy="majority", options={"n": n}, task=task,
                max_tokens=512, seed=None,
            )  # fmt: skip
            direct.append(time.perf_counter() - t0)
    return statistics.median(served), statistics.median(direct)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--n", type=int, default=4, help="samples per request (majority-N)")
    ap.add_argument("--engine-delay", type=float, default=0.01, help="seconds per engine call")
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()

    engine = _engine(args.engine_delay)
    settings = ServeSettings(model=MODEL, concurrency=args.concurrency, queue=args.queue)
    server, url = _serve(create_app(engine, settings))
    try:
        load = asyncio.run(_load(url, args.clients, args.seconds, args.n))
        other = {s: c for s, c in load["statuses"].items() if s not in (200, 429)}
        print(
            f"load: {args.clients} clients for {args.seconds:g} s, concurrency "
            f"{args.concurrency}, queue {args.queue}, majority-{args.n}, engine delay "
            f"{args.engine_delay * 1000:g} ms per call"
        )
        print(
            f"  {load['answered']} answered, {load['rps']:.1f} requests/s, p50 "
            f"{load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms; 429s: "
            f"{load['statuses'].get(429, 0)}; other statuses: {other or 'none'}; "
            f"transport errors: {load['transport_errors'] or 'none'}"
        )
        served, direct = asyncio.run(_overhead(url, engine, args.n, args.repeats))
        print(
            f"overhead: median {served * 1000:.2f} ms per request through the server, "
            f"{direct * 1000:.2f} ms in-process, difference {(served - direct) * 1000:.2f} ms "
            f"({served / direct:.2f}x), {args.repeats} requests each, alternating"
        )
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
