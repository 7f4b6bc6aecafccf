"""An engine for any OpenAI-compatible HTTP server: vLLM, SGLang, llama.cpp, Ollama, hosted APIs.

It talks to ``/v1/chat/completions`` (requests with ``messages``) and ``/v1/completions``
(requests with a raw ``prompt``) through ``httpx.AsyncClient``; the ``openai`` package is
not needed.

Sampling ``n`` times. A request with ``n > 1`` is first sent once with the server's ``n``
field, which lets the server prefill the prompt once for all samples. llama.cpp's server
and Ollama ignore ``n`` and answer with a single choice; when a response has fewer
choices than asked, the engine remembers that the server lacks native ``n`` and gets the
missing samples (and every later one) from concurrent single requests, sibling ``i``
seeded with ``seed + i`` when the request has a seed. ``capabilities.native_n`` starts
optimistic (``True``, unless the constructor says otherwise) and turns ``False`` once the
server has been seen to ignore ``n``.

Usage accounting (the sums over one request equal the server's ``usage`` figures):

* ``usage.prompt_tokens_details.cached_tokens``, when the server reports it, becomes
  ``cached_tokens`` and is taken out of ``prompt_tokens``.
* One response with several choices (native ``n``): the first choice carries the
  response's prompt and cached tokens and ``calls=1``; each sibling carries
  ``prompt_tokens=0`` and the whole prompt as ``cached_tokens`` (the shared prompt is
  prefilled once and cached for each sibling, as the ``Engine`` protocol counts it), with
  ``calls=0``. The server reports one ``completion_tokens`` total, so it is split among the
  choices: by each choice's logprob token count when logprobs came back and those counts
  add up to the total (then the split is exact), otherwise in proportion to each choice's
  text length by the largest-remainder rule (ties to the earlier choice; all-empty texts
  split evenly). Either way the parts add up to the server's total.
* Concurrent single requests (no native ``n``): each response's usage goes, unchanged, on
  its own completion with ``calls=1``.

Errors. Only HTTP 429 (``RateLimited``), 5xx, connection failures and timeouts
(``EngineTimeout``) are retried, with exponential backoff and jitter, honouring a
``Retry-After`` header (capped). When the retries run out, the last error's class is
raised with the attempt count in its message. Any other failure (another 4xx, a body that
is not JSON, a response without choices or usage) raises ``EngineError`` at once, quoting
the status and the start of the body. Asking for logprobs from a server that returns none
raises ``CapabilityMissing``, and so does a ``confidence_stop`` (no server API for it).

Continuing a partial answer (``GenRequest.continuation``), as search and budget forcing
do. With ``chat_template`` (a Jinja chat template, a path to one, or ``"chatml"``) the
engine renders chats itself and sends every request to ``/v1/completions`` as one
prompt string, continuation appended: requests that extend each other then share a
textual prefix, which is what the prefix caches of vLLM, SGLang and llama.cpp
(``cache_prompt``) match on. Without it, a chat with a continuation goes to
``/v1/chat/completions`` with the continuation as a final assistant message and
``continue_final_message: true, add_generation_prompt: false``, which vLLM and SGLang
honour; servers that ignore those fields (llama.cpp's Python server) would answer a
fresh turn instead, so give them ``chat_template``.

Reasoning servers return a chat choice's thinking apart from its content
(``reasoning_content``, or ``reasoning``); the completion's text holds both, the thinking
first between ``<think>`` and ``</think>`` (``ponder.core.reasoning.join_reasoning``),
so answers are read from the content alone and ``ponder serve`` can hand the thinking
back apart.

Tools. A chat request's ``tools`` and ``tool_choice`` go to the server as they are, and
the calls in its reply's ``message.tool_calls`` come back as ``Completion.tool_calls``;
a server that renders the tools but leaves the model's markup in the text
(llama-cpp-python's, with a GGUF's template) is read with ``tool_format.HERMES``. With
``chat_template`` the engine renders the tools itself and reads the calls in the
format the template names.

An engine binds to the event loop it is first used on; used from a new loop (a
synchronous wrapper calling ``asyncio.run`` repeatedly) it opens a fresh connection pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from ponder.core.engine import Capabilities, text_token_bound
from ponder.core.errors import (
    CapabilityMissing,
    ConfigError,
    EngineError,
    EngineTimeout,
    RateLimited,
)
from ponder.core.reasoning import join_reasoning
from ponder.core.types import (
    Completion,
    GenRequest,
    Message,
    TokenLogprob,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)
from ponder.engines.tool_format import HERMES, ToolFormat, format_for_template, template_messages

__all__ = ["OpenAIEngine"]

MAX_TOP_LOGPROBS = 20
_SNIPPET_CHARS = 300
_T = TypeVar("_T")

CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"


def normalize_base_url(url: str) -> str:
    """Return ``url`` ending in its API version segment, ``/v1`` added when it has none.

    ``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/v1/`` all become
    ``http://host:8000/v1``; a URL already ending in a version (``.../v1``, ``.../v2``) keeps it.
    """
    url = url.strip().rstrip("/")
    parsed = httpx.URL(url) if url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"OpenAI base URL must look like http://host:port or https://host/v1, got {url!r}"
        )
    if not re.search(r"/v\d+$", parsed.path):
        url += "/v1"
    return url


class OpenAIEngine:
    """Generates with a model behind an OpenAI-compatible HTTP API.

    ``model`` is the model name sent with every request. ``base_url`` and ``api_key``
    default to the ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` environment variables; the
    URL may or may not end in ``/v1``. ``max_concurrency`` bounds requests in flight;
    ``timeout`` (seconds) bounds each attempt; ``max_retries`` extra attempts are made on
    retryable failures, waiting ``backoff_base * 2**k`` seconds (with jitter, at most
    ``backoff_max``) or what ``Retry-After`` says (at most ``retry_after_max``).
    ``cache_prompt`` asks llama.cpp's server to reuse its prompt cache (other servers
    ignore the field). ``native_n=False`` skips the attempt to use the server's ``n``.
    ``transport`` replaces the network, for tests (``httpx.MockTransport``).
    ``chat_template`` renders chats client-side (see the module doc).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 60.0,
        cache_prompt: bool = True,
        native_n: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        chat_template: str | None = None,
    ) -> None:
        if not model:
            raise ConfigError("OpenAIEngine needs a model name")
        url = base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL")
        if not url:
            raise ConfigError(
                "OpenAIEngine needs a server URL: pass base_url= or set OPENAI_BASE_URL "
                "(for example http://127.0.0.1:8000/v1)"
            )
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if not timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if backoff_base < 0 or backoff_max < 0 or retry_after_max < 0:
            raise ConfigError("backoff_base, backoff_max and retry_after_max must be >= 0")
        self._model = model
        self._base_url = normalize_base_url(url)
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._max_concurrency = max_concurrency
        self._timeout = float(timeout)
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._retry_after_max = retry_after_max
        self._cache_prompt = cache_prompt
        self._native_n = native_n
        # True once the server has answered a request with all of its n samples
        self._native_n_seen = False
        self._transport = transport
        self._template: Any = None
        self._tool_format: ToolFormat | None = None
        if chat_template:
            self._template, self._tool_format = _compile_template(chat_template)
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return self._model

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            native_n=self._native_n,
            logprobs=True,
            top_logprobs=MAX_TOP_LOGPROBS,
            prefix_reuse=True,
            tools=True,
        )

    def prompt_tokens(self, request: GenRequest) -> int:
        """An upper bound on the prompt tokens the server will report for ``request``
        (a ``PromptCounter``), since a server's tokenizer is not at hand: the
        ``text_token_bound`` of the request as sent (a chat rendered here with
        ``chat_template``, else its messages plus an allowance for the server's
        template). It counts once per sample until the server has been seen to answer
        ``n`` samples in one response, since one that ignores ``n`` is sent a request
        per sample, each prefilling the whole prompt."""
        once = text_token_bound(self._wire(request))
        shared = self._native_n and self._native_n_seen
        return once if shared else once * request.n

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        for req in requests:
            if req.top_logprobs > MAX_TOP_LOGPROBS:
                raise CapabilityMissing(
                    f"{self._model}: OpenAI-compatible servers return at most "
                    f"{MAX_TOP_LOGPROBS} top logprobs per token, {req.top_logprobs} were asked"
                )
            if req.confidence_stop is not None:
                raise CapabilityMissing(
                    f"{self._model}: an OpenAI-compatible server cannot be told to stop a "
                    "sequence when its confidence drops (GenRequest.confidence_stop); use "
                    "the embedded llama.cpp engine for DeepConf's online mode"
                )
        wire = [self._wire(req) for req in requests]
        out = await _all_or_nothing([self._generate_request(req) for req in wire])
        return [self._read_calls(r, comps) for r, comps in zip(requests, out, strict=True)]

    def _read_calls(self, req: GenRequest, comps: list[Completion]) -> list[Completion]:
        """Calls the server left in the text read out: with ``chat_template`` the engine
        rendered the tools and reads its format; a server that renders them itself but
        does not parse (llama-cpp-python's, with a GGUF's template) is read as Hermes."""
        if not req.tools or req.tool_choice.mode == "none" or req.continuation:
            return comps
        templated = self._template is not None
        fmt = self._tool_format or HERMES
        prefix = fmt.forced_prefix(req.tool_choice) if templated else ""
        out = []
        for c in comps:
            calls: tuple[ToolCall, ...] = ()
            if not c.tool_calls:
                content, calls = fmt.parse(prefix + c.text)
            out.append(replace(c, text=content, tool_calls=calls) if calls else c)
        return out

    def _wire(self, req: GenRequest) -> GenRequest:
        """The request as sent: rendered to a prompt with ``chat_template``, and the
        continuation folded into the prompt where the server sees one string."""
        if req.messages is not None and self._template is not None:
            shown = req.tools if req.tool_choice.mode != "none" else ()
            if shown and self._tool_format is None:
                raise CapabilityMissing(
                    f"{self._model}: the chat_template shows no tools in a format ponder "
                    "reads (ponder.engines.tool_format); leave chat_template out to let the "
                    "server render them"
                )
            rendered = self.render_chat(req.messages, shown)
            if shown and self._tool_format is not None:
                rendered += self._tool_format.forced_prefix(req.tool_choice)
            return replace(
                req, messages=None, prompt=rendered + req.continuation, continuation="",
                tools=(), tool_choice=ToolChoice(),
            )  # fmt: skip
        if req.prompt is not None and req.continuation:
            return replace(req, prompt=req.prompt + req.continuation, continuation="")
        return req

    def render_chat(self, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> str:
        """``messages`` (and ``tools``, when there are any) through the engine's
        ``chat_template``, generation prompt added."""
        if self._template is None:
            raise ConfigError(f"{self._model}: no chat_template was given to render chats with")
        shown = {"tools": [t.to_dict() for t in tools]} if tools else {}
        try:
            return str(
                self._template.render(
                    messages=template_messages(messages),
                    **shown,
                    add_generation_prompt=True,
                    bos_token="",
                    eos_token="",
                )
            )
        except Exception as exc:  # jinja2 errors and the template's raise_exception
            raise EngineError(
                f"{self._model}: the chat template rejected the messages: {exc}"
            ) from exc

    async def health(self, timeout: float = 5.0) -> None:
        """Raise ``EngineError`` unless the server answers ``GET /models`` with 2xx in
        ``timeout`` seconds (one attempt, no retries): a cheap liveness check."""
        client, _ = self._bind()
        url = self._base_url + "/models"
        with _transport_errors(self._model, url, f"{url} did not answer within {timeout:g} s"):
            async with asyncio.timeout(timeout):
                response = await client.get(url)
        if not 200 <= response.status_code < 300:
            raise _status_error(self._model, url, response)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        self._semaphore = None
        self._loop = None
        if client is not None:
            await client.aclose()

    # -- one request ---------------------------------------------------------------------

    async def _generate_request(self, req: GenRequest) -> list[Completion]:
        if req.n == 1 or not self._native_n:
            return await self._singles(req, first=0, count=req.n)
        data = await self._post(_path(req), self._body(req, n=req.n, seed=req.seed))
        completions = self._completions(req, data, asked=req.n)
        self._native_n_seen = self._native_n_seen or len(completions) == req.n
        if len(completions) < req.n:
            # The server ignores ``n`` (llama.cpp, Ollama): remember it, fill in the rest.
            self._native_n = False
            rest = await self._singles(req, first=len(completions), count=req.n - len(completions))
            completions.extend(rest)
        return completions

    async def _singles(self, req: GenRequest, *, first: int, count: int) -> list[Completion]:
        return await _all_or_nothing([self._single(req, first + i) for i in range(count)])

    async def _single(self, req: GenRequest, index: int) -> Completion:
        seed = None if req.seed is None else req.seed + index
        data = await self._post(_path(req), self._body(req, n=1, seed=seed))
        return self._completions(req, data, asked=1)[0]

    def _body(self, req: GenRequest, *, n: int, seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        if req.messages is not None:
            body["messages"] = [m.to_dict() for m in req.messages]
            if req.continuation:
                body["messages"].append({"role": "assistant", "content": req.continuation})
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
            if req.tools:
                body["tools"] = [t.to_dict() for t in req.tools]
                body["tool_choice"] = req.tool_choice.to_wire()
            if req.wants_logprobs:
                # top_logprobs is sent even when 0: llama.cpp's server returns no
                # logprobs at all for ``logprobs: true`` without it.
                body["logprobs"] = True
                body["top_logprobs"] = req.top_logprobs
        else:
            body["prompt"] = req.prompt
            if req.wants_logprobs:
                body["logprobs"] = req.top_logprobs
        if n > 1:
            body["n"] = n
        if seed is not None:
            body["seed"] = seed
        if req.stop:
            body["stop"] = list(req.stop)
        if req.top_k > 0:
            body["top_k"] = req.top_k
        if self._cache_prompt:
            body["cache_prompt"] = True
        return body

    def _completions(
        self, req: GenRequest, data: Mapping[str, Any], *, asked: int
    ) -> list[Completion]:
        """Turn one response into completions, dividing its usage as the module doc says."""
        choices = self._choices(data, asked)
        texts = [_choice_text(c, chat=req.messages is not None) for c in choices]
        logprobs: list[tuple[TokenLogprob, ...] | None] = [None] * len(choices)
        if req.wants_logprobs:
            logprobs = [
                self._choice_logprobs(c, text, req) for c, text in zip(choices, texts, strict=True)
            ]
        prompt, cached, completion_total = self._usage(data)
        counts: list[int] | None = None
        if req.wants_logprobs:
            counts = [len(lp or ()) for lp in logprobs]
            if sum(counts) != completion_total:
                counts = None
        # a reasoning server's separate thinking goes back in front of the answer, in
        # the form ponder.core.reasoning splits; its tokens are among completion_tokens
        full = [
            join_reasoning(_choice_reasoning(c), t) for c, t in zip(choices, texts, strict=True)
        ]
        if counts is None:
            counts = split_total(completion_total, [len(t) for t in full])
        out = []
        for i, choice in enumerate(choices):
            usage = (
                Usage(prompt, cached, counts[i], calls=1)
                if i == 0
                else Usage(0, prompt + cached, counts[i], calls=0)
            )
            calls = _choice_tool_calls(choice, self._model) if req.messages is not None else ()
            out.append(
                Completion(
                    full[i], _finish(choice), usage, logprobs[i], _stop_sequence(choice, req),
                    tool_calls=calls,
                )
            )  # fmt: skip
        return out

    def _choices(self, data: Mapping[str, Any], asked: int) -> list[Mapping[str, Any]]:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise EngineError(
                f"{self._model}: response has no choices: {_snippet(json.dumps(data))}"
            )
        if not all(isinstance(c, dict) for c in choices):
            raise EngineError(
                f"{self._model}: response choices are not objects: {_snippet(json.dumps(data))}"
            )
        if len(choices) > asked:
            raise EngineError(
                f"{self._model}: asked for {asked} choices, the server returned {len(choices)}"
            )
        if all(isinstance(c.get("index"), int) for c in choices):
            choices = sorted(choices, key=lambda c: int(c["index"]))
        return choices

    def _usage(self, data: Mapping[str, Any]) -> tuple[int, int, int]:
        """(prompt tokens computed, prompt tokens served from cache, completion tokens)."""
        usage = data.get("usage")
        if not isinstance(usage, dict):
            raise EngineError(
                f"{self._model}: response has no usage, so its cost is unknown: "
                f"{_snippet(json.dumps(data))}"
            )
        prompt = _count(usage, "prompt_tokens", self._model)
        completion = _count(usage, "completion_tokens", self._model)
        cached = 0
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            cached = min(max(int(details["cached_tokens"]), 0), prompt)
        return prompt - cached, cached, completion

    def _choice_logprobs(
        self, choice: Mapping[str, Any], text: str, req: GenRequest
    ) -> tuple[TokenLogprob, ...]:
        raw = choice.get("logprobs")
        parsed: tuple[TokenLogprob, ...] | None = None
        try:
            if req.messages is not None:
                parsed = _chat_logprobs(raw, req.top_logprobs)
            else:
                parsed = _completion_logprobs(raw, req.top_logprobs)
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineError(
                f"{self._model}: could not read the logprobs in the response "
                f"({exc!r}): {_snippet(json.dumps(raw))}"
            ) from exc
        if parsed is None or (not parsed and text):
            raise CapabilityMissing(
                f"{self._model}: logprobs were asked for but the server at {self._base_url} "
                "returned none (llama.cpp's server needs --logits_all true; some servers "
                "do not offer logprobs at all)"
            )
        return parsed

    # -- HTTP ----------------------------------------------------------------------------

    def _bind(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._semaphore is None or self._loop is not loop:
            # A pool opened on another (finished) loop cannot be used or closed here.
            limits = httpx.Limits(
                max_connections=self._max_concurrency,
                max_keepalive_connections=self._max_concurrency,
            )
            self._client = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self._timeout),
                limits=limits,
                transport=self._transport,
            )
            self._semaphore = asyncio.Semaphore(self._max_concurrency)
            self._loop = loop
        return self._client, self._semaphore

    async def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        url = self._base_url + path
        attempts = self._max_retries + 1
        last: EngineError | None = None
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                response = await self._send(url, body)
                if response.status_code == 429 or response.status_code >= 500:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    raise _status_error(self._model, url, response)
                if not 200 <= response.status_code < 300:
                    raise _status_error(self._model, url, response)
                return self._decode(url, response)
            except EngineError as exc:
                if not exc.retryable:
                    raise
                last = exc
            if attempt < attempts:
                await asyncio.sleep(self._delay(attempt, retry_after))
        assert last is not None
        raise _exhausted(last, attempts) from last

    async def _send(self, url: str, body: Mapping[str, Any]) -> httpx.Response:
        client, semaphore = self._bind()
        timed_out = f"no answer from {url} within {self._timeout:g} s"
        async with semaphore:
            with _transport_errors(self._model, url, timed_out):
                async with asyncio.timeout(self._timeout):
                    return await client.post(url, json=body)

    def _decode(self, url: str, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EngineError(
                f"{self._model}: {url} answered {response.status_code} with a body that is "
                f"not JSON: {_snippet(response.text)}"
            ) from exc
        if not isinstance(data, dict):
            raise EngineError(
                f"{self._model}: {url} answered {response.status_code} with JSON that is "
                f"not an object: {_snippet(response.text)}"
            )
        return data

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._retry_after_max)
        ceiling = min(self._backoff_base * 2 ** (attempt - 1), self._backoff_max)
        # Jitter spreads out clients that failed together, so they do not retry together.
        return random.uniform(ceiling / 2, ceiling)


# -- helpers -----------------------------------------------------------------------------


async def _all_or_nothing(aws: Sequence[Awaitable[_T]]) -> list[_T]:
    """Await all in order; on the first failure cancel the others and raise that failure.

    Unlike ``asyncio.gather`` it leaves nothing running after an error, and unlike a
    ``TaskGroup`` it raises the error itself rather than an ``ExceptionGroup``.
    """
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    if not tasks:
        return []
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        # also reached when the caller is cancelled
        for task in tasks:
            if not task.done():
                task.cancel()
    if pending:
        await asyncio.wait(pending)
    # exception() on every finished task, so none is reported as "never retrieved"
    errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
    for error in errors:
        if error is not None:
            raise error
    return [task.result() for task in tasks]


def split_total(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` that sum to ``total``.

    Largest-remainder rule: every part gets the floor of its share, and the units left
    over go to the largest fractional remainders, earlier parts first on ties. All-zero
    weights split evenly.
    """
    if not weights:
        return []
    if sum(weights) <= 0:
        weights = [1] * len(weights)
    weight_sum = sum(weights)
    parts = [total * w // weight_sum for w in weights]
    remainders = [total * w % weight_sum for w in weights]
    left = total - sum(parts)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[i] += 1
    return parts


def _path(req: GenRequest) -> str:
    return CHAT_PATH if req.messages is not None else COMPLETIONS_PATH


def _choice_text(choice: Mapping[str, Any], *, chat: bool) -> str:
    if chat:
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(message, dict) or not isinstance(content, str | None):
            raise EngineError(f"chat choice has no message content: {_snippet(json.dumps(choice))}")
        return content or ""
    text = choice.get("text")
    if not isinstance(text, str):
        raise EngineError(f"completion choice has no text: {_snippet(json.dumps(choice))}")
    return text


def _choice_reasoning(choice: Mapping[str, Any]) -> str | None:
    """A chat choice's thinking, which reasoning servers return apart from the content:
    ``reasoning_content`` (DeepSeek's API, vLLM, SGLang, llama.cpp's server) or
    ``reasoning`` (newer vLLM, OpenRouter); None when there is none."""
    message = choice.get("message")
    if not isinstance(message, dict):
        return None
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _choice_tool_calls(choice: Mapping[str, Any], model: str) -> tuple[ToolCall, ...]:
    """The calls of a chat choice's ``message.tool_calls`` (none when it has none)."""
    message = choice.get("message")
    raw = message.get("tool_calls") if isinstance(message, dict) else None
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise EngineError(f"{model}: message.tool_calls is not a list: {_snippet(json.dumps(raw))}")
    try:
        return tuple(ToolCall.from_dict(c) for c in raw if isinstance(c, Mapping))
    except ValueError as exc:
        raise EngineError(
            f"{model}: could not read a tool call ({exc}): {_snippet(json.dumps(raw))}"
        ) from exc


def _finish(choice: Mapping[str, Any]) -> Literal["stop", "length"]:
    # "eos", "stop", "tool_calls", "content_filter" and a missing reason all mean the
    # model stopped before the token limit.
    return "length" if choice.get("finish_reason") == "length" else "stop"


def _stop_sequence(choice: Mapping[str, Any], req: GenRequest) -> str | None:
    """The stop string that ended a choice: vLLM and SGLang say so in ``stop_reason``
    (a string; a token id or null means the model ended). Other servers do not say,
    and a request with stop strings that stopped then gets ``""`` ("maybe one")."""
    if _finish(choice) == "length" or not req.stop:
        return None
    reason = choice.get("stop_reason", choice.get("matched_stop", ...))
    if isinstance(reason, str):
        return reason
    if reason is ...:
        return ""
    return None


def _count(usage: Mapping[str, Any], key: str, model: str) -> int:
    value = usage.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise EngineError(f"{model}: usage.{key} is missing or not a token count: {value!r}")
    return value


def _top(pairs: Sequence[tuple[str, float]], k: int) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(pairs, key=lambda p: -p[1])[:k])


def _chat_logprobs(raw: Any, k: int) -> tuple[TokenLogprob, ...] | None:
    """``choice.logprobs`` of a chat completion.

    ``{"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}``.
    """
    if not isinstance(raw, dict) or raw.get("content") is None:
        return None
    out = []
    for entry in raw["content"]:
        alternatives = entry.get("top_logprobs") or []
        top = _top([(str(a["token"]), float(a["logprob"])) for a in alternatives], k)
        out.append(TokenLogprob(str(entry["token"]), float(entry["logprob"]), top))
    return tuple(out)


def _completion_logprobs(raw: Any, k: int) -> tuple[TokenLogprob, ...] | None:
    """``choice.logprobs`` of a text completion: parallel ``tokens`` / ``token_logprobs`` /
    ``top_logprobs`` lists, the last holding one ``{token: logprob}`` mapping per token."""
    if not isinstance(raw, dict) or raw.get("tokens") is None:
        return None
    tokens = raw["tokens"]
    chosen = raw.get("token_logprobs") or []
    tops = raw.get("top_logprobs") or [None] * len(tokens)
    if len(chosen) != len(tokens) or len(tops) != len(tokens):
        raise ValueError("tokens, token_logprobs and top_logprobs differ in length")
    out = []
    for token, logprob, alternatives in zip(tokens, chosen, tops, strict=True):
        if logprob is None:
            # an echoed first prompt token has no logprob; it is not generated text
            continue
        pairs = [(str(t), float(v)) for t, v in (alternatives or {}).items()]
        out.append(TokenLogprob(str(token), float(logprob), _top(pairs, k)))
    return tuple(out)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "..."


@contextlib.contextmanager
def _transport_errors(model: str, url: str, timed_out: str) -> Iterator[None]:
    """Raise what goes wrong reaching ``url`` as the engine's errors: a timeout (httpx's
    or ``asyncio.timeout``'s) as ``EngineTimeout`` saying ``timed_out``, and a
    connection failure as a retryable ``EngineError``."""
    try:
        yield
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise EngineTimeout(f"{model}: {timed_out}") from exc
    except httpx.TransportError as exc:
        raise EngineError(
            f"{model}: could not reach {url}: {type(exc).__name__}: {exc}",
            retryable=True,
        ) from exc


def _status_error(model: str, url: str, response: httpx.Response) -> EngineError:
    status = response.status_code
    message = f"{model}: {url} answered HTTP {status}: {_snippet(response.text)}"
    if status == 429:
        return RateLimited(message)
    return EngineError(message, retryable=status >= 500)


def _exhausted(last: EngineError, attempts: int) -> EngineError:
    message = f"{last} (gave up after {attempts} attempts)"
    if isinstance(last, EngineTimeout):
        return EngineTimeout(message)
    if isinstance(last, RateLimited):
        return RateLimited(message)
    return EngineError(message, retryable=True)


CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _compile_template(source: str) -> tuple[Any, ToolFormat | None]:
    """A Jinja chat template from its text, a file holding it, or ``"chatml"``, and the
    tool-call format it asks for (None when it shows no tools ponder reads)."""
    if source == "chatml":
        source = CHATML_TEMPLATE
    elif "{" not in source and Path(source).is_file():
        source = Path(source).read_text(encoding="utf-8")
    try:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:
        raise ConfigError("chat_template needs jinja2: pip install jinja2") from exc

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source), format_for_template(source)
    except TemplateError as exc:
        raise ConfigError(f"chat_template does not compile: {exc}") from exc
