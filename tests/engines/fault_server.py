"""A real HTTP server on 127.0.0.1 that misbehaves on purpose, for testing client retries.

The first path segment picks the behaviour, so one server serves every fault and a client
chooses one through its base URL (``http://127.0.0.1:PORT/error500/v1``):

- ``ok``: a valid chat or text completion.
- ``error500``: HTTP 500 with a JSON error body.
- ``ratelimit``: HTTP 429 with ``Retry-After: 0``.
- ``flaky``: HTTP 503 for the first ``flaky_failures`` hits, then a valid answer.
- ``malformed``: HTTP 200 with a body that is not JSON.
- ``badrequest``: HTTP 400 with a JSON error body.
- ``hang``: answers nothing for ``hang_seconds`` (longer than the client's timeout),
  then gives up; stopping the server ends the wait at once.
- ``drop``: closes the connection without answering.

``hits`` counts requests per behaviour.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

ROUTES = ("ok", "error500", "ratelimit", "flaky", "malformed", "badrequest", "hang", "drop")


def _valid_answer(request: dict[str, Any]) -> dict[str, Any]:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    if "messages" in request:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": "all good"},
            "finish_reason": "stop",
        }
    else:
        choice = {"index": 0, "text": "all good", "finish_reason": "stop"}
    return {"choices": [choice], "usage": usage}


class FaultServer:
    """Runs the server in a daemon thread; use as a context manager or call start/stop."""

    def __init__(self, *, hang_seconds: float = 3.0, flaky_failures: int = 2) -> None:
        self.hang_seconds = hang_seconds
        self.flaky_failures = flaky_failures
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.port}/{route}/v1"

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _count(self, route: str) -> int:
        with self._lock:
            self.hits[route] += 1
            return self.hits[route]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None  # keep test output quiet

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                route = self.path.strip("/").split("/", 1)[0]
                if route not in ROUTES:
                    self._send(404, {"error": {"message": f"no route {route!r}"}})
                    return
                hit = server._count(route)
                if route == "ok" or (route == "flaky" and hit > server.flaky_failures):
                    self._send(200, _valid_answer(json.loads(raw)))
                elif route in ("error500", "flaky"):
                    status = 500 if route == "error500" else 503
                    self._send(status, {"error": {"message": "the model fell over"}})
                elif route == "ratelimit":
                    self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                elif route == "badrequest":
                    self._send(400, {"error": {"message": "unknown field 'bogus'"}})
                elif route == "malformed":
                    self._send_raw(200, b'{"choices": [{"text": "trunc', "application/json")
                elif route == "hang":
                    # bounded, and cut short when the server stops
                    server._stopping.wait(server.hang_seconds)
                    self.close_connection = True
                elif route == "drop":
                    self.close_connection = True

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                body = json.dumps(payload).encode()
                self._send_raw(status, body, "application/json", headers)

            def _send_raw(
                self,
                status: int,
                body: bytes,
                content_type: str,
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler
