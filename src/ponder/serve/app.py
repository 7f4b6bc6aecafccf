"""``ponder serve``: an OpenAI-compatible server that runs a strategy per request.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /v1/ponder/usage``, ``GET /health``. A request's strategy comes from
``ponder.serve.selection``; the reply is an ordinary completion whose text is the
winning candidate's, whose ``usage`` counts every token the strategy spent (all
samples, the verifier's too; ``prompt_tokens`` includes prompt tokens served from
cache, which ``prompt_tokens_details.cached_tokens`` shows), plus a ``ponder`` object
with the strategy, answer, votes, ponder's own usage, seconds and, on request, the
candidates and the request's trace. Requests with ``tools``: see ``ponder.serve.tools``.

Reasoning models: a chat reply's ``content`` is the winning sample's final answer and
its thinking comes apart as ``message.reasoning_content`` (streamed as
``delta.reasoning_content`` before the content); votes and answers never read the
thinking (``ponder.core.reasoning``). A per-request thinking cap is the
``budget_forcing`` strategy's own fields:
``{"ponder": {"strategy": "budget_forcing", "max_thinking_tokens": 256}}``.

Free-form requests: a voting strategy's winner is chosen by ``ponder.serve.freeform``'s
policy (``settings.freeform``, ``"ponder": {"freeform": ...}``): the answers' vote when
the samples carry checkable answers, else by meaning (USC or semantic clusters); the
reply's ``ponder.freeform`` says which and why.

Tracing: with ``trace_dir`` (``--trace DIR``) every request's inner calls and decision
are written to ``DIR/<reply id>.jsonl``; ``"ponder": {"trace": true}`` returns them in
the reply (``ponder.serve.trace``). Streaming honours ``stream_options.include_usage``:
then usage (and ``ponder``) come in a last chunk with empty ``choices``, as OpenAI sends
it; without it the finishing chunk carries them.

Admission: at most ``concurrency`` requests run at once and ``queue`` more wait; a
request beyond that gets 429 with ``Retry-After``. Optional bearer-token API keys:
without a valid one, 401 and no work. Errors are JSON
``{"error": {"message", "type", "code"}}``: 400 for a bad request (bad JSON, missing
messages, unknown strategy, limits exceeded, a budget the strategy cannot keep), 502
when the engine or upstream server fails, 504 when it or the request (``--timeout``)
times out, 500 when the strategy raises anything else.

A request that fails after its strategy started still says what it spent: its error
object carries ``ponder.usage`` (prompt, cached, completion and total tokens, calls),
taken from the request's ledger: every engine call that finished, including those
before a timeout cancelled the rest (a call cut off mid-way is not counted). The
openai client hands it over as ``APIStatusError.body["ponder"]["usage"]``; a streamed
reply's error event carries the same object. Every request that ran, failed or not,
adds its spending to its API key's running total, which ``GET /v1/ponder/usage``
returns to that key's holder only (``ponder.serve.accounts``).
"""

# no `from __future__ import annotations`: FastAPI reads the route signatures at
# runtime, and their types are imported inside create_app
import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.core.budget import Ledger
from ponder.core.engine import Engine
from ponder.core.errors import (
    BudgetExceeded,
    CapabilityMissing,
    ConfigError,
    EngineError,
    EngineTimeout,
    MissingExtra,
)
from ponder.core.reasoning import split_reasoning
from ponder.core.types import Message, Problem, Result, Usage
from ponder.serve.accounts import Accounts
from ponder.serve.chat import ChatTask, chat_problem
from ponder.serve.freeform import FreeformPolicy, run_with_policy
from ponder.serve.progress import Progress, WatchedEngine
from ponder.serve.selection import Limits, Selection, is_positive_int, select
from ponder.serve.tools import (
    ToolEngine,
    ToolRequest,
    ToolRequestError,
    message_tool_fields,
    read_tools,
    settle,
    tool_reply,
)
from ponder.serve.trace import TraceWriter, trace_records
from ponder.strategies import Context

__all__ = ["ServeSettings", "create_app", "served_name"]

log = logging.getLogger(__name__)

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool"}  # fmt: skip


def served_name(model: str) -> str:
    """The name clients use for a model the server runs (``ponder serve --model``'s,
    unless ``--served-model-name`` gives one): a .gguf file's name without the suffix,
    anything else (a bundled name, an upstream model) as given."""
    return Path(model).name[: -len(".gguf")] if model.endswith(".gguf") else model


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs requests; see the module docstring."""

    model: str
    default_strategy: str = "single"
    default_options: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    default_max_tokens: int = 512
    concurrency: int = 4
    queue: int = 16
    api_keys: frozenset[str] = frozenset()
    request_timeout: float | None = None
    retry_after: int = 1
    heartbeat: float = 5.0
    trace_dir: str | Path | None = None
    freeform: FreeformPolicy = field(default_factory=FreeformPolicy)


class HTTPError(Exception):
    """An error answered with ``status`` and an OpenAI-style error body."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", code: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.code = code or kind
        self.headers: dict[str, str] = {}
        # what the request spent before it failed; None when it failed before any work
        self.usage: Usage | None = None
        self.trace: list[dict[str, Any]] | None = None  # when the request asked for it


class _Admission:
    """A bounded number of running requests and a bounded queue in front of them."""

    def __init__(self, concurrency: int, queue: int) -> None:
        if concurrency < 1 or queue < 0:
            raise ConfigError("serve: concurrency must be at least 1 and queue at least 0")
        self._sem = asyncio.Semaphore(concurrency)
        self.queue = queue
        self.waiting = 0
        self.running = 0

    def check(self, retry_after: int) -> None:
        """Raise 429 when no request can start or wait now."""
        if self._sem.locked() and self.waiting >= self.queue:
            err = HTTPError(
                429, "the server is at capacity; retry shortly", "rate_limit_error", "busy"
            )
            err.headers["Retry-After"] = str(retry_after)
            raise err

    @contextlib.asynccontextmanager
    async def slot(self, retry_after: int) -> AsyncIterator[None]:
        self.check(retry_after)
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._sem.release()


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise HTTPError(400, f"{where}: only text content parts are supported")
            text = part.get("text")
            if not isinstance(text, str):
                raise HTTPError(400, f"{where}: a text part needs a string 'text'")
            parts.append(text)
        return "".join(parts)
    raise HTTPError(400, f"{where}: 'content' must be a string or a list of text parts")


def _messages(body: Mapping[str, Any]) -> tuple[Message, ...]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise HTTPError(400, "'messages' must be a non-empty list", code="missing_messages")
    out = []
    for i, m in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(m, Mapping):
            raise HTTPError(400, f"{where} must be an object with 'role' and 'content'")
        role = _ROLES.get(str(m.get("role")))
        if role is None:
            raise HTTPError(400, f"{where}: role must be one of {', '.join(_ROLES)}")
        try:
            calls, call_id = message_tool_fields(m, role)  # type: ignore[arg-type]
        except ToolRequestError as e:
            raise HTTPError(400, f"{where}: {e}", code="invalid_tools") from e
        # an assistant's content may be null (it called tools, or refused)
        empty = role == "assistant" and m.get("content") is None
        content = "" if empty else _content(m.get("content"), where)
        out.append(Message(role, content, calls, call_id))  # type: ignore[arg-type]
    return tuple(out)


def _max_tokens(body: Mapping[str, Any], settings: ServeSettings) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return min(settings.default_max_tokens, settings.limits.max_tokens)
    if not is_positive_int(value):
        raise HTTPError(400, f"max_tokens must be a positive integer, got {value!r}")
    if value > settings.limits.max_tokens:
        raise HTTPError(
            400, f"max_tokens={value} is over this server's limit of {settings.limits.max_tokens}"
        )
    return value


def _seed(body: Mapping[str, Any]) -> int | None:
    seed = body.get("seed")
    if seed is None:
        return None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise HTTPError(400, f"seed must be an integer, got {seed!r}")
    return seed


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, Mapping):
        raise HTTPError(400, "'stream_options' must be an object")
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise HTTPError(400, f"stream_options.include_usage must be true or false, got {include!r}")
    return include


def _check_model(name: str, settings: ServeSettings) -> None:
    if name and name not in (settings.model, "default"):
        raise HTTPError(
            404,
            f"model {name!r} is not served here; this server serves {settings.model!r} "
            f"(optionally prefixed with a strategy, e.g. 'majority-8/{settings.model}')",
            code="model_not_found",
        )


def _winner(result: Result) -> str:
    for c in result.candidates:
        if result.answer is not None and c.answer == result.answer:
            return c.text
    return result.candidates[0].text if result.candidates else ""


@dataclass(frozen=True)
class _Prepared:
    selection: Selection
    max_tokens: int
    seed: int | None
    ident: str = ""  # the reply's id, and its trace file's name
    include_usage: bool = False
    tools: ToolRequest | None = None


def _id(kind: str) -> str:
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


def _usage(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.prompt_tokens + u.cached_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.cached_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    }


def _pieces(text: str, size: int = 64) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _error_body(e: HTTPError) -> dict[str, Any]:
    error: dict[str, Any] = {"message": str(e), "type": e.kind, "code": e.code}
    if e.usage is not None:
        # inside "error", since that object is what OpenAI clients hand to the caller
        error["ponder"] = {"usage": e.usage.to_dict()}
        if e.trace is not None:
            error["ponder"]["trace"] = e.trace
    return {"error": error}


class Server:
    """The request handling behind the routes, independent of the web framework."""

    def __init__(self, engine: Engine, settings: ServeSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.task = ChatTask()
        self.admission = _Admission(settings.concurrency, settings.queue)
        self.accounts = Accounts()
        self.traces = TraceWriter(settings.trace_dir) if settings.trace_dir else None

    def authorize(self, header: str | None) -> str | None:
        """The key whose account a request is counted on: the bearer token, None when
        there is none; 401 when keys are configured and this is not one of them."""
        scheme, _, token = (header or "").partition(" ")
        key = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        if self.settings.api_keys and key not in self.settings.api_keys:
            raise HTTPError(401, "a valid API key is required", "authentication_error")
        return key

    def selection(self, body: Mapping[str, Any]) -> Selection:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise HTTPError(400, "'model' must be a non-empty string")
        try:
            chosen = select(
                model,
                body,
                limits=self.settings.limits,
                default=(self.settings.default_strategy, self.settings.default_options),
                freeform=self.settings.freeform,
            )
        except ConfigError as e:
            raise HTTPError(400, str(e), code="invalid_strategy") from e
        _check_model(chosen.model, self.settings)
        return chosen

    def prepare(self, body: Mapping[str, Any], kind: str = "chat") -> _Prepared:
        """Everything about a request that can be refused before any work."""
        try:
            tools = read_tools(body)
        except ToolRequestError as e:
            raise HTTPError(400, str(e), code="invalid_tools") from e
        return _Prepared(
            self.selection(body), _max_tokens(body, self.settings), _seed(body), _id(kind),
            _include_usage(body) if body.get("stream") else False, tools,
        )  # fmt: skip

    async def solve(
        self,
        messages: tuple[Message, ...],
        prepared: _Prepared,
        report: Callable[[Progress], None] | None = None,
        *,
        key: str | None = None,
    ) -> Result:
        """Run the request's strategy and add what it spent to ``key``'s account; a
        failure is an ``HTTPError`` whose ``usage`` is what the request spent."""
        async with self.admission.slot(self.settings.retry_after):
            problem = chat_problem(uuid.uuid4().hex, messages)
            engine: Engine = self.engine
            if prepared.tools is not None:
                engine = ToolEngine(engine, self.task.messages(problem), prepared.tools)
            if report is not None:
                engine = WatchedEngine(engine, self.task, self.task.messages(problem), report)
            traced = self.traces is not None or prepared.selection.trace
            ctx = Context(
                engine=engine, task=self.task, ledger=Ledger(detailed=traced),
                max_tokens=prepared.max_tokens, seed=prepared.seed,
            )  # fmt: skip
            failed = True
            try:
                result = await self._run(prepared.selection, problem, ctx)
                if prepared.tools is not None:
                    result = settle(result, prepared.tools)
                failed = False
                if traced:
                    trace = self._trace(prepared, messages, ctx.ledger, result)
                    result = dataclasses.replace(result, meta={**result.meta, "trace": trace})
                return result
            except HTTPError as e:
                e.usage = ctx.ledger.total()
                if traced:
                    e.trace = self._trace(
                        prepared, messages, ctx.ledger, (e.status, str(e), e.usage)
                    )
                raise
            finally:
                # here, not only on success: failed, timed-out and cancelled requests
                # spent tokens too, and a key's total must include them
                self.accounts.add(key, ctx.ledger.total(), failed=failed)

    def _trace(
        self,
        prepared: _Prepared,
        messages: tuple[Message, ...],
        ledger: Ledger,
        end: Result | tuple[int, str, Usage],
    ) -> list[dict[str, Any]] | None:
        """The request's trace, written under ``--trace``; returned when the request
        asked for it. A trace that cannot be written is logged, and the reply goes out."""
        chosen = prepared.selection
        asked = {"model": self.settings.model, "strategy": chosen.name,
                 "options": dict(chosen.options), "budget": chosen.budget,
                 "max_tokens": prepared.max_tokens, "seed": prepared.seed}  # fmt: skip
        records = trace_records(prepared.ident, asked, messages, ledger, end)
        if self.traces is not None:
            try:
                self.traces.write(prepared.ident, records)
            except OSError:
                log.exception("could not write the trace of %s", prepared.ident)
        return records if chosen.trace else None

    async def _run(self, chosen: Selection, problem: Problem, ctx: Context) -> Result:
        """The strategy under the request's budget and timeout, its failures as
        ``HTTPError``s."""
        try:
            with ctx.ledger.budget(total_tokens=chosen.budget):
                run = run_with_policy(chosen.name, chosen.strategy, chosen.freeform, problem, ctx)
                return await asyncio.wait_for(run, self.settings.request_timeout)
        except TimeoutError as e:
            raise HTTPError(
                504,
                f"the strategy did not finish within {self.settings.request_timeout:g} s",
                "timeout_error",
            ) from e
        except BudgetExceeded as e:
            raise HTTPError(400, f"budget: {e}", code="budget_exceeded") from e
        except (CapabilityMissing, MissingExtra, ConfigError) as e:
            raise HTTPError(400, str(e), code="unsupported") from e
        except EngineTimeout as e:
            raise HTTPError(504, f"engine timed out: {e}", "timeout_error") from e
        except EngineError as e:
            raise HTTPError(502, f"engine failed: {e}", "upstream_error") from e
        except Exception as e:
            # a bug or an output the strategy could not handle: the traceback goes to the
            # server's log, the client gets a 500 that still says what was spent
            log.exception("the %s strategy raised", chosen.name)
            raise HTTPError(
                500,
                f"the {chosen.name} strategy failed: {type(e).__name__}: {e}; "
                "the server log has the traceback",
                "server_error",
                "strategy_failed",
            ) from e

    def ponder_field(self, chosen: Selection, result: Result) -> dict[str, Any]:
        out: dict[str, Any] = {
            "strategy": chosen.name,
            "options": dict(chosen.options),
            "budget": chosen.budget,
            "answer": result.answer,
            "votes": dict(result.votes),
            "usage": result.usage.to_dict(),
            "seconds": round(result.seconds, 4),
        }
        if result.meta.get("stopped") == "budget":
            # the budget ended the strategy early: its best answer so far, and why
            out["stopped"] = "budget"
            out["stop_reason"] = result.meta.get("stop_reason")
        if "tools" in result.meta:
            out["tools"] = result.meta["tools"]
        if chosen.candidates:
            out["candidates"] = [c.to_dict() for c in result.candidates]
        if "freeform" in result.meta:
            out["freeform"] = result.meta["freeform"]
        if result.meta.get("trace") is not None:
            out["trace"] = result.meta["trace"]
        return out

    def reply(
        self, kind: str, body: Mapping[str, Any], chosen: Selection, result: Result,
        ident: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        text = _winner(result)
        if kind == "chat":
            parts = split_reasoning(text)
            content, calls = tool_reply(result, parts.answer)
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if parts.reasoning is not None:
                message["reasoning_content"] = parts.reasoning
            if calls:
                message["tool_calls"] = calls
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        return {
            "id": ident or _id(kind),
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [choice],
            "usage": _usage(result.usage),
            "ponder": self.ponder_field(chosen, result),
        }

    async def stream(
        self,
        kind: str,
        body: Mapping[str, Any],
        messages: tuple[Message, ...],
        prepared: _Prepared,
        key: str | None = None,
    ) -> AsyncIterator[str]:
        """Server-sent events: progress comments while the strategy runs (and a
        heartbeat every ``heartbeat`` seconds without news), then the answer as chunks,
        a last chunk with ``usage`` and ``ponder``, and ``[DONE]``. A failure after the
        stream started is an ``error`` event (with ``ponder.usage``, as a plain error reply
        has). A client that goes away cancels the work."""
        events: asyncio.Queue[Progress] = asyncio.Queue()
        work = asyncio.ensure_future(self.solve(messages, prepared, events.put_nowait, key=key))
        ident, created, model = prepared.ident, int(time.time()), body.get("model")
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            data = {"id": ident, "object": obj, "created": created, "model": model,
                    "choices": choices, **extra}  # fmt: skip
            return f"data: {json.dumps(data)}\n\n"

        waiter: asyncio.Future[Progress] | None = None
        try:
            while not work.done():
                waiter = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait(
                    {work, waiter}, timeout=self.settings.heartbeat,
                    return_when=asyncio.FIRST_COMPLETED,
                )  # fmt: skip
                if waiter in done:
                    yield waiter.result().comment()
                else:
                    waiter.cancel()
                    if not done:
                        yield ": working\n\n"
            try:
                result = work.result()
            except HTTPError as e:
                yield f"data: {json.dumps(_error_body(e))}\n\n"
                yield "data: [DONE]\n\n"
                return
            text = _winner(result)
            if kind == "chat":
                parts = split_reasoning(text)
                content, calls = tool_reply(result, parts.answer)
                yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""},
                              "finish_reason": None}])  # fmt: skip
                if parts.reasoning is not None:
                    for piece in _pieces(parts.reasoning):
                        yield chunk([{"index": 0, "delta": {"reasoning_content": piece},
                                      "finish_reason": None}])  # fmt: skip
                for piece in _pieces(content or "") if content or not calls else []:
                    yield chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
                if calls:
                    deltas = [{"index": i, **call} for i, call in enumerate(calls)]
                    yield chunk([{"index": 0, "delta": {"tool_calls": deltas},
                                  "finish_reason": None}])  # fmt: skip
                finish = "tool_calls" if calls else "stop"
                last = [{"index": 0, "delta": {}, "finish_reason": finish}]
            else:
                for piece in _pieces(text):
                    yield chunk([{"index": 0, "text": piece, "finish_reason": None}])
                last = [{"index": 0, "text": "", "finish_reason": "stop"}]
            tail = {"usage": _usage(result.usage),
                    "ponder": self.ponder_field(prepared.selection, result)}  # fmt: skip
            if prepared.include_usage:
                # OpenAI's form: the finishing chunk, then one with no choices and the usage
                yield chunk(last, usage=None)
                yield chunk([], **tail)
            else:
                yield chunk(last, **tail)
            yield "data: [DONE]\n\n"
        finally:
            if waiter is not None and not waiter.done():
                waiter.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, HTTPError):
                    await work


async def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"the request body is not valid JSON ({e})") from e
    if not isinstance(body, dict):
        raise HTTPError(400, "the request body must be a JSON object")
    return body


def create_app(engine: Engine, settings: ServeSettings) -> Any:
    """A FastAPI app serving ``engine`` with ``settings``; it closes the engine on
    shutdown."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, StreamingResponse
    except ImportError as e:
        raise MissingExtra("fastapi", "serve") from e

    server = Server(engine, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.aclose()

    app = FastAPI(title="ponder serve", lifespan=lifespan)
    app.state.server = server

    def error(e: HTTPError) -> Any:
        return JSONResponse(_error_body(e), status_code=e.status, headers=e.headers)

    async def complete(request: Request, kind: str) -> Any:
        try:
            key = server.authorize(request.headers.get("authorization"))
            body = await _json_body(await request.body())
            if kind == "chat":
                messages = _messages(body)
            else:
                prompt = body.get("prompt")
                if not isinstance(prompt, str) or not prompt:
                    raise HTTPError(400, "'prompt' must be a non-empty string")
                if body.get("tools") is not None:
                    raise HTTPError(400, "tools go to /v1/chat/completions", code="invalid_tools")
                messages = (Message("user", prompt),)
            prepared = server.prepare(body, kind)
            if body.get("stream"):
                server.admission.check(settings.retry_after)
                return StreamingResponse(
                    server.stream(kind, body, messages, prepared, key),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache"},
                )
            result = await server.solve(messages, prepared, key=key)
        except HTTPError as e:
            return error(e)
        return JSONResponse(server.reply(kind, body, prepared.selection, result, prepared.ident))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await complete(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await complete(request, "text")

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        try:
            server.authorize(request.headers.get("authorization"))
        except HTTPError as e:
            return error(e)
        return {
            "object": "list",
            "data": [{"id": settings.model, "object": "model", "owned_by": "ponder"}],
        }

    @app.get("/v1/ponder/usage")
    async def usage(request: Request) -> Any:
        # the caller's own account only: the key that reads is the key that is read
        try:
            key = server.authorize(request.headers.get("authorization"))
        except HTTPError as e:
            return error(e)
        return {"object": "ponder.usage", **server.accounts.get(key).to_dict()}

    @app.get("/health")
    async def health() -> Any:
        return {
            "status": "ok",
            "model": settings.model,
            "running": server.admission.running,
            "waiting": server.admission.waiting,
        }

    return app
