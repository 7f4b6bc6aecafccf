"""The embedded engine: a GGUF model run in-process by llama.cpp.

Decoding is ponder's own batched loop over llama-cpp-python's low-level API (see
``_llama_batch``): a request's prompt is prefilled once and shared by its ``n``
samples, and the sequences of every request in flight (siblings and concurrent
``generate`` calls alike) are decoded together, one batch per step. On a CPU that
batching is the main lever, by how much depends on the model and the cores (see
bench/sampling_throughput.py). A slot keeps the cells of its last sequence, so a
prompt that starts like an earlier prompt (or prompt plus completion) prefills only
what is new; ``Usage`` counts the rest as ``cached_tokens``. That is how a search
forks a partial solution: a request whose ``continuation`` extends what a slot just
generated prefills only the new tokens, and its ``n`` children share them by a KV
copy (``prefix_reuse=False`` switches the first part off, for measuring it).
``embed`` returns the hidden state at a prompt's last token through the same slots,
and ``continuation_logprobs`` the logprobs of given continuations by prefill alone
(with ``hidden=True``, also their final hidden states from the same decode calls).
A request with ``hidden`` gets each completion's hidden states from the decode steps
that generated it (every row of a step has its output already, so the price is
copying one row per token), the rows a later prefill of the same tokens would score.
Hidden states are the final layer's only (after the last norm): llama.cpp's API gives
nothing earlier without a per-node eval callback (see ``_llama_batch``).
A request's ``confidence_stop`` ends a sequence mid-generation when its sliding-window
token confidence drops (DeepConf's online mode), freeing its slot for the next one.
A request's ``tools`` are rendered by the GGUF's chat template (which must name a
tool-call format ponder reads, ``tool_format``: Qwen 2.5's does) and the calls are read
out of each completion's text into ``Completion.tool_calls``; ``tool_choice``
``"required"`` or a named function starts the assistant's turn with the format's
opening of a call, and ``"none"`` leaves the tools out of the prompt.

llama.cpp runs its threads with OpenMP, and libgomp shortens its spin-waits once a
process has more OpenMP threads than cores: a second thread running llama.cpp
computations (a second engine, or a ``Llama`` used from the main thread) slowed
decoding by about 40% on two cores. Run one llama.cpp user per process at a time,
or let the other do its work in a thread that exits.

Greedy output and the high-level API: for a request decoded alone, temperature 0
gives exactly the tokens of ``Llama.create_completion`` / ``create_chat_completion``
at temperature 0 with the same context settings (both evaluate the prompt in the
same batches, decode one token per step and take the argmax), and so does a
request decoded in a batch with others, because every slot has its own KV stream
(see ``_llama_batch``). What does change greedy tokens is anything that moves the
logits by a last bit and flips a near-tie: ``flash_attn`` set differently on the
two sides (llama.cpp's own default is "auto", llama-cpp-python's is off, and so is
this engine's), another ``n_batch`` for a prompt longer than it, or a KV cache shared
by all sequences (``kv_unified``), where a sequence's attention sums depend on where
its cells lie among the others'. The integration tests check greedy equality with
the high-level API, alone and batched, token for token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ponder.core.engine import Capabilities, ContinuationLogprobs, Embedding
from ponder.core.errors import CapabilityMissing, ConfigError, EngineError, MissingExtra
from ponder.core.types import Completion, GenRequest
from ponder.engines._llama_batch import DecodeLoop, EngineStats, Job, Outcome
from ponder.engines.tool_format import ToolFormat, format_for_template, template_messages

__all__ = ["EngineStats", "LlamaCppEngine", "default_extra_buffers"]

log = logging.getLogger(__name__)

MAX_TOP_LOGPROBS = 20
_SEED_MODULUS = 0xFFFFFFFF  # llama.cpp reads seed 0xFFFFFFFF as "pick one at random"


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingExtra("llama-cpp-python", "local") from exc
    return llama_cpp


def _cpu_has_amx() -> bool:
    """Whether this CPU has Intel AMX (Sapphire Rapids and later; read on Linux only)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_int8" in line.split()
    except OSError:
        return False
    return False


def _build_has_amx(lib: Any) -> bool:
    """Whether this llama.cpp build has its AMX kernels (``AMX_INT8 = 1`` in its
    system info: a native build on an AMX CPU has them)."""
    info = lib.llama_print_system_info()
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" in text


def default_extra_buffers(lib: Any) -> bool:
    """Whether llama.cpp may put weights in its extra buffer types (repacked for its AMX
    and AVX-512 kernels), when the caller does not say.

    Off where the build has AMX kernels and the CPU runs them: there llama-cpp-python
    0.3.36's AMX matrix multiply crashed the process (SIGSEGV in
    ``ggml_backend_amx_mul_mat``) on every prompt longer than one token, in its own
    high-level API too (llama.cpp issue 20824). Off costs speed (four samples of
    qwen2.5-coder-1.5b decoded at 22 against 33 tokens/s on two cores); a build without
    AMX keeps the AVX-512 repacking and works (``CMAKE_ARGS`` in the Makefile).
    ``PONDER_LLAMA_EXTRA_BUFFERS=1`` or ``0`` decides instead."""
    env = os.environ.get("PONDER_LLAMA_EXTRA_BUFFERS", "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env in ("0", "false", "no", "off"):
        return False
    if env:
        raise ConfigError(f"PONDER_LLAMA_EXTRA_BUFFERS must be 1 or 0, got {env!r}")
    if _build_has_amx(lib) and _cpu_has_amx():
        log.warning(
            "llama.cpp was built with AMX kernels, which crash on this CPU (llama.cpp "
            "issue 20824): loading weights without repacking, which is slower. Rebuild "
            "llama-cpp-python without AMX for speed: CMAKE_ARGS='-DCMAKE_C_FLAGS=-mno-amx-int8 "
            "-DCMAKE_CXX_FLAGS=-mno-amx-int8' pip install --force-reinstall --no-cache-dir "
            "llama-cpp-python"
        )
        return False
    return True


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _load_model(lib: Any, path: Path, extra_buffers: bool | None) -> Any:
    """The GGUF model at ``path``, loaded (``extra_buffers`` as ``LlamaCppEngine`` says)."""
    model_params = lib.llama_model_default_params()
    model_params.use_extra_bufts = (
        default_extra_buffers(lib) if extra_buffers is None else extra_buffers
    )
    model = lib.llama_model_load_from_file(str(path).encode("utf-8"), model_params)
    if not model:
        raise EngineError(
            f"llama.cpp could not load {path}: the file is corrupt, not GGUF, "
            "or of an architecture this llama.cpp build does not know"
        )
    return model


def _new_context(
    lib: Any,
    model: Any,
    path: Path,
    *,
    n_ctx: int,
    n_parallel: int,
    n_batch: int,
    threads: int,
    flash_attn: bool,
) -> Any:
    """A llama.cpp context for ``model`` with ``n_parallel`` streams of ``n_ctx`` cells;
    the caller frees the model when this raises."""
    if lib.llama_model_is_recurrent(model) or lib.llama_model_is_hybrid(model):
        raise EngineError(
            f"{path.name} is a recurrent model; LlamaCppEngine shares prompts "
            "between sequences, which needs a transformer KV cache"
        )
    params = lib.llama_context_default_params()
    # llama.cpp pads a stream to 256 cells; padding first keeps n_ctx divisible
    params.n_ctx = -(-n_ctx // 256) * 256 * n_parallel
    params.n_batch = n_batch
    params.n_ubatch = n_batch
    params.n_seq_max = n_parallel
    params.kv_unified = False  # a stream per slot: batched == alone, bit for bit
    params.n_threads = threads
    params.n_threads_batch = threads
    params.flash_attn_type = (
        lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    params.no_perf = True
    ctx = lib.llama_init_from_model(model, params)
    if not ctx:
        raise EngineError(
            f"llama.cpp could not create a context for {path.name} "
            f"(n_ctx={n_ctx}, n_parallel={n_parallel}); try a smaller n_ctx"
        )
    return ctx


class LlamaCppEngine:
    """A GGUF model decoded in-process with continuous batching.

    ``n_parallel`` is how many sequences decode together (llama.cpp's ``n_seq_max``);
    more wait for a free slot, so any ``n`` works. Four suits qwen2.5-coder-1.5b on
    two CPU cores (DESIGN.md); smaller models gain from more. ``n_ctx`` is the
    context of one sequence, prompt plus completion: the KV cache holds
    ``n_ctx * n_parallel`` cells. A completion stops with ``"length"`` when its slot
    is full; a prompt of ``n_ctx`` tokens or more is an :class:`EngineError`.

    ``n_batch`` is the most prompt tokens computed in one call, ``n_threads`` defaults
    to the cores this process may use, and ``flash_attn`` is off as in
    llama-cpp-python (greedy text then matches its high-level API); ``verbose`` lets
    llama.cpp's log through. ``prefix_reuse=False`` prefills every prompt in full
    (siblings of one request still share it), for measuring what reuse saves.
    ``extra_buffers`` lets llama.cpp repack weights for its faster kernels (None: yes,
    but for a build whose AMX kernels crash on this CPU; see ``default_extra_buffers``).
    ``score_chunk`` caps the continuation tokens of one sequence that
    ``continuation_logprobs`` prefills per call (default ``n_batch``); 1 reproduces
    generation's logprobs exactly, at decoding's speed (see ``_llama_batch``).

    One worker thread owns the llama.cpp context; ``generate`` may be called
    concurrently from one event loop or several. Call :meth:`aclose` when done.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        n_ctx: int = 4096,
        n_parallel: int = 4,
        n_batch: int = 512,
        n_threads: int | None = None,
        flash_attn: bool = False,
        verbose: bool = False,
        prefix_reuse: bool = True,
        extra_buffers: bool | None = None,
        score_chunk: int | None = None,
    ) -> None:
        if n_parallel < 1:
            raise ConfigError(f"n_parallel must be >= 1, got {n_parallel}")
        if n_ctx < 16:
            raise ConfigError(f"n_ctx must be >= 16, got {n_ctx}")
        if n_batch < 1:
            raise ConfigError(f"n_batch must be >= 1, got {n_batch}")
        if score_chunk is not None and score_chunk < 1:
            raise ConfigError(f"score_chunk must be >= 1, got {score_chunk}")
        lib = _import_llama_cpp()
        path = Path(model_path)
        if not path.is_file():
            raise EngineError(f"model file not found: {path}")
        _quiet_llama_logs(verbose)
        lib.llama_backend_init()

        model = _load_model(lib, path, extra_buffers)
        n_batch = max(n_batch, n_parallel)
        try:
            ctx = _new_context(
                lib,
                model,
                path,
                n_ctx=n_ctx,
                n_parallel=n_parallel,
                n_batch=n_batch,
                threads=n_threads or _default_threads(),
                flash_attn=flash_attn,
            )
        except BaseException:
            lib.llama_model_free(model)
            raise

        self._lib = lib
        self._model = model
        self._ctx = ctx
        self._vocab = lib.llama_model_get_vocab(model)
        self._name = path.stem
        self._path = path
        self._sha256: str | None = None
        self._n_ctx = int(lib.llama_n_ctx_seq(ctx))
        self._n_parallel = n_parallel
        self._chat, self._chat_problem, self._tool_format = self._chat_formatter()
        self._closed = False
        self._prefix_reuse = prefix_reuse
        self._loop = DecodeLoop(
            lib,
            ctx,
            self._vocab,
            n_slots=n_parallel,
            n_batch=n_batch,
            n_embd=int(lib.llama_model_n_embd(model)),
            prefix_reuse=prefix_reuse,
            score_chunk=score_chunk,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def model_sha256(self) -> str:
        """The sha256 of the GGUF file (hashed once, on first use)."""
        if self._sha256 is None:
            from ponder.engines.models import file_sha256

            self._sha256 = file_sha256(self._path)
        return self._sha256

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            native_n=True,
            logprobs=True,
            top_logprobs=MAX_TOP_LOGPROBS,
            prefix_reuse=self._prefix_reuse,
            fork=self._prefix_reuse,
            embeddings=True,
            confidence_stop=True,
            hidden_states=True,
            tools=self._tool_format is not None,
        )

    @property
    def n_ctx(self) -> int:
        """Tokens one sequence can hold, prompt plus completion."""
        return self._n_ctx

    @property
    def n_parallel(self) -> int:
        """Most sequences decoded together in one step."""
        return self._n_parallel

    @property
    def stats(self) -> EngineStats:
        return self._loop.stats()

    async def generate(self, requests: Sequence[GenRequest]) -> list[list[Completion]]:
        out = await self._run(requests, self._generation_job)
        return [self._read_calls(r, comps) for r, comps in zip(requests, out, strict=True)]

    def _read_calls(self, req: GenRequest, comps: list[Completion]) -> list[Completion]:
        """Completions with the calls in their text read out (for a request that shows
        tools; not for a continuation, whose earlier text the engine does not see)."""
        fmt = self._tool_format
        if fmt is None or not _shows_tools(req) or req.continuation:
            return comps
        prefix = fmt.forced_prefix(req.tool_choice)
        out = []
        for c in comps:
            content, calls = fmt.parse(prefix + c.text)
            out.append(dataclasses.replace(c, text=content, tool_calls=calls) if calls else c)
        return out

    async def embed(self, requests: Sequence[GenRequest]) -> list[Embedding]:
        """The final hidden state at the last token of each request's prompt (chat
        rendered, ``continuation`` appended); sampling fields are ignored."""
        answers = await self._run(requests, self._embedding_job)
        return [answer[0] for answer in answers]

    async def continuation_logprobs(
        self, request: GenRequest, texts: Sequence[str], *, hidden: bool = False
    ) -> list[ContinuationLogprobs]:
        """The logprob of every token of each text after ``request``'s prompt, with
        ``request.top_logprobs`` alternatives, by prefill alone (a ``LogprobScorer``).

        The prompt is tokenized as ``generate`` tokenizes it and computed once (or
        found in a slot); the texts are scored together, several per decode call.
        A text is tokenized on its own, without BOS and with special-token names
        read as plain text, which gives back the tokens generation produced for it
        whenever the tokenizer's own split of the text is what the model sampled (a
        model may sample another split of the same text, which retokenising cannot
        recover: such a text is scored as its canonical tokens). A sample cut at a stop
        string or ended by an end-of-generation token holds neither, and neither is
        scored. Sampling fields and ``n`` are ignored.

        ``hidden=True`` also reads the final layer's hidden state (after the last norm)
        at every continuation row whose logits are computed, and answers with each
        text's ``HiddenStates``: the row of its second-to-last token (whose logits
        predict the last token) and the mean of its rows; a one-token text has none.
        The same rows are computed either way, so the logprobs do not change (the
        integration tests check equality on smollm2).
        """
        if not texts:
            return []
        req, prompt = self._prepare(dataclasses.replace(request, n=len(texts)))
        tokens = [self._tokenize(t, add_special=False, parse_special=False) for t in texts]
        longest = max(len(t) for t in tokens)
        if len(prompt) + longest > self._n_ctx:
            raise EngineError(
                f"{self._name}: a {len(prompt)}-token prompt and a {longest}-token "
                f"continuation do not fit a sequence's {self._n_ctx} tokens; raise n_ctx"
            )

        def job(req: GenRequest, prompt: list[int], on_done: Callable[[Outcome], None]) -> Job:
            return Job(
                request=req,
                prompt=prompt,
                max_new=0,
                seeds=[0] * req.n,
                on_done=on_done,
                score=tokens,
                hidden=hidden,
            )

        answers: list[list[ContinuationLogprobs]] = await self._run([req], job)
        return answers[0]

    def _generation_job(
        self, req: GenRequest, prompt: list[int], on_done: Callable[[Outcome], None]
    ) -> Job:
        max_new = min(req.max_tokens, self._n_ctx - len(prompt))
        return Job(request=req, prompt=prompt, max_new=max_new, seeds=_seeds(req), on_done=on_done)

    def _embedding_job(
        self, req: GenRequest, prompt: list[int], on_done: Callable[[Outcome], None]
    ) -> Job:
        return Job(
            request=req, prompt=prompt, max_new=1, seeds=[0] * req.n, on_done=on_done, embed=True
        )

    async def _run(
        self,
        requests: Sequence[GenRequest],
        make_job: Callable[[GenRequest, list[int], Callable[[Outcome], None]], Job],
    ) -> list[Any]:
        """Submit one job per request to the decode loop and wait for every answer, in
        request order. ``make_job`` builds a request's job from it, its prompt tokens
        and the callback that answers it. Every prompt is prepared before any job is
        submitted, so a bad request fails before work starts; when the caller stops
        waiting, the jobs are cancelled so that their slots are freed."""
        if self._closed:
            raise EngineError(f"{self._name}: the engine is closed")
        prepared = [self._prepare(req) for req in requests]  # fail before any work starts
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        jobs: list[Job] = []
        for req, prompt in prepared:
            future: asyncio.Future[Any] = loop.create_future()
            jobs.append(make_job(req, prompt, _settle_from_thread(loop, future)))
            futures.append(future)
        for job in jobs:
            self._loop.submit(job)
        try:
            return list(await asyncio.gather(*futures))
        except BaseException:
            for job in jobs:  # the caller stopped waiting: free their slots
                job.cancelled = True
            for future in futures:
                future.cancel()
            raise

    def tokenize(self, request: GenRequest) -> list[int]:
        """The prompt tokens ``request`` is prefilled with (chat template applied)."""
        if self._closed:
            raise EngineError(f"{self._name}: the engine is closed")
        return self._prepare(request)[1]

    def prompt_tokens(self, request: GenRequest) -> int:
        """The prompt tokens ``request`` is prefilled with, counted exactly (a
        ``PromptCounter``): its siblings share one prefill, and cells reused from a
        slot only make the charge smaller."""
        return len(self.tokenize(request))

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is on its own: no chat template, no BOS."""
        if self._closed:
            raise EngineError(f"{self._name}: the engine is closed")
        return len(self._tokenize(text, add_special=False)) if text else 0

    async def aclose(self) -> None:
        """Stop the worker thread and free the context and the model."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._loop.close)
        self._lib.llama_free(self._ctx)
        self._lib.llama_model_free(self._model)

    async def __aenter__(self) -> LlamaCppEngine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- prompts ---------------------------------------------------------------------

    def _prepare(self, req: GenRequest) -> tuple[GenRequest, list[int]]:
        if req.top_logprobs > MAX_TOP_LOGPROBS:
            raise CapabilityMissing(
                f"{self._name} returns at most {MAX_TOP_LOGPROBS} top logprobs, "
                f"{req.top_logprobs} were asked for"
            )
        if req.prompt is not None:
            prompt = self._tokenize(req.prompt + req.continuation, add_special=True)
        else:
            # the template writes any BOS itself, as llama-cpp-python assumes too
            text = self._render_chat(req) + req.continuation
            prompt = self._tokenize(text, add_special=False)
        if not prompt:
            raise EngineError(f"{self._name}: the prompt is empty")
        if len(prompt) >= self._n_ctx:
            raise EngineError(
                f"{self._name}: the prompt is {len(prompt)} tokens but a sequence's "
                f"context holds {self._n_ctx}, leaving no room to generate; shorten the "
                "prompt or raise n_ctx"
            )
        return req, prompt

    def _render_chat(self, req: GenRequest) -> str:
        if self._chat is None:
            raise CapabilityMissing(
                f"{self._name}: {self._chat_problem}; send a raw prompt instead of messages"
            )
        assert req.messages is not None
        shown = _shows_tools(req)
        if shown and self._tool_format is None:
            raise CapabilityMissing(
                f"{self._name}: its chat template shows no tools in a format ponder reads "
                "(ponder.engines.tool_format)"
            )
        tools = {"tools": [t.to_dict() for t in req.tools]} if shown else {}
        try:
            rendered = self._chat(messages=template_messages(req.messages), **tools)
        except Exception as exc:  # jinja2 errors and the template's raise_exception
            raise EngineError(
                f"{self._name}: the chat template rejected the messages: {exc}"
            ) from exc
        if shown and self._tool_format is not None:
            # "required" or a named function: the turn starts as a call, so it is one
            return str(rendered.prompt) + self._tool_format.forced_prefix(req.tool_choice)
        return str(rendered.prompt)

    def _chat_formatter(self) -> tuple[Any, str, ToolFormat | None]:
        """llama-cpp-python's Jinja2 renderer for the GGUF's ``tokenizer.chat_template``
        (or None and why there is none), and the tool-call format the template asks
        for (None when it shows no tools ponder can read back)."""
        lib = self._lib
        template = lib.llama_model_chat_template(self._model, None)
        if not template:
            return None, "the GGUF metadata has no chat template", None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        source = template.decode("utf-8")
        try:
            formatter = Jinja2ChatFormatter(
                template=source,
                eos_token=self._token_text(lib.llama_vocab_eos(self._vocab)),
                bos_token=self._token_text(lib.llama_vocab_bos(self._vocab)),
                add_generation_prompt=True,
            )
        except Exception as exc:  # a template jinja2 cannot compile
            return None, f"the GGUF chat template does not compile ({exc})", None
        return formatter, "", format_for_template(source)

    def _token_text(self, token: int) -> str:
        if token == self._lib.LLAMA_TOKEN_NULL:
            return ""
        return bytes(self._lib.llama_vocab_get_text(self._vocab, token)).decode(
            "utf-8", errors="replace"
        )

    def _tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        lib = self._lib
        data = text.encode("utf-8")
        size = len(data) + 8  # a token covers at least one byte, plus BOS/EOS
        buf = (lib.llama_token * size)()
        args = (add_special, parse_special)
        n = lib.llama_tokenize(self._vocab, data, len(data), buf, size, *args)
        if n < 0:
            size = -n
            buf = (lib.llama_token * size)()
            n = lib.llama_tokenize(self._vocab, data, len(data), buf, size, *args)
        if n < 0:
            raise EngineError(f"{self._name}: tokenization failed ({n})")
        return list(buf[:n])


def _shows_tools(req: GenRequest) -> bool:
    """Whether ``req``'s tools go to the model (``tool_choice="none"`` hides them)."""
    return bool(req.tools) and req.tool_choice.mode != "none"


def _seeds(req: GenRequest) -> list[int]:
    base = req.seed if req.seed is not None else secrets.randbelow(_SEED_MODULUS)
    return [(base + i) % _SEED_MODULUS for i in range(req.n)]


def _settle_from_thread(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> Any:
    """A callback for the worker thread that settles ``future`` on its own loop."""

    def settle(outcome: Outcome) -> None:
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def from_thread(outcome: Outcome) -> None:
        # a closed loop has nobody waiting for the answer any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome)

    return from_thread


# ggml's log levels (ggml.h: NONE, DEBUG, INFO, WARN, ERROR, then CONT, which goes on
# with the previous line's level). llama-cpp-python 0.3's own callback reads an older
# order (INFO, WARN, ERROR, DEBUG), so it shows llama.cpp's warnings as errors, such
# as the "control-looking token" line every qwen2.5 GGUF prints at load.
_GGML_LEVELS = {0: logging.CRITICAL, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING}
_GGML_ERROR, _GGML_CONT = 4, 5
_LLAMA_LOGGER = "llama-cpp-python"
_log_state: dict[str, Any] = {"last": logging.DEBUG, "callback": None}


def _llama_log(level: int, text: bytes, user_data: Any) -> None:
    """llama.cpp's log line at its true level, on stderr when the ``llama-cpp-python``
    logger's level lets it through."""
    if level == _GGML_CONT:
        mapped = _log_state["last"]
    else:
        mapped = logging.ERROR if level >= _GGML_ERROR else _GGML_LEVELS.get(level, logging.ERROR)
    _log_state["last"] = mapped
    if mapped >= logging.getLogger(_LLAMA_LOGGER).getEffectiveLevel():
        sys.stderr.write(text.decode("utf-8", errors="replace"))
        sys.stderr.flush()


def _quiet_llama_logs(verbose: bool) -> None:
    """Keep llama.cpp's load and context chatter off stderr unless ``verbose``.

    llama.cpp's log goes through ``_llama_log`` (installed once, kept alive here), at the
    level of the ``llama-cpp-python`` logger: everything with ``verbose``, else errors
    only (a level the user set is left alone).
    """
    logger = logging.getLogger(_LLAMA_LOGGER)
    if verbose:
        logger.setLevel(logging.DEBUG)
    elif logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    if _log_state["callback"] is None:
        lib = _import_llama_cpp()
        _log_state["callback"] = lib.llama_log_callback(_llama_log)
        lib.llama_log_set(_log_state["callback"], None)
