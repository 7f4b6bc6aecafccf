"""The decode loop behind :class:`ponder.engines.llamacpp.LlamaCppEngine`.

One worker thread owns the llama.cpp context and nothing else touches it. Requests
arrive on a queue as :class:`Job` objects and are decoded by continuous batching:

- a job's prompt is prefilled once, into one *slot* (a llama.cpp sequence id), and
  the logits after its last token are kept; every sibling samples its first token
  from them, so a sibling that starts late (``n`` larger than the free slots)
  prefills nothing again;
- a sibling in another slot gets the prompt's KV cells with ``llama_memory_seq_cp``
  (a copy of memory, not of compute: each slot has its own KV stream, see below);
- each step decodes the pending token of every running sequence, whichever job it
  belongs to, in one ``llama_decode`` call, then samples each sequence with its own
  llama.cpp sampler chain;
- a finished sibling whose job still has siblings waiting trims its slot back to
  the prompt and hands it to the next sibling;
- a request with a ``confidence_stop`` keeps, per sequence, a sliding window of its
  tokens' confidences (read from the top logprobs the loop computes anyway) and ends
  the sequence with ``"confidence"`` once the full window's mean drops below the
  threshold: the slot is freed at once, which is the point of DeepConf's online mode;
- a free slot keeps the cells of the last sequence it held, and a new prompt goes
  to the free slot that shares the longest prefix with it, so only the rest is
  prefilled (a prompt that extends an earlier prompt and its completion, or the
  same prompt sent again, costs only its new tokens).

Each slot has its own KV stream (``kv_unified=False``) of ``n_ctx`` cells. With one
stream shared by all sequences, a sequence's logits depend on where its cells
happen to lie among other sequences' cells: the attention sums run in another
order, and the 8-bit quantization of activations turns those last-bit differences
into visible ones (0.4 in a logit was measured with smollm2). With a stream per
slot, a sequence decoded in a batch gets bit for bit the tokens it gets alone, so a
seed reproduces its text whatever else runs. The price is that llama.cpp copies a
whole stream to give a sibling the prompt (for qwen2.5-coder-1.5b on two cores, a
few milliseconds per copy with 1024-cell slots and up to tens with 4096-cell ones,
against about 100 ms for a decode step of four sequences), and a slot's cells are
not lent to another.

An *embedding* job (``Job.embed``) computes its prompt the same way, with
``llama_set_embeddings`` on for those calls, and answers with the final hidden state
at the last prompt token; its slot then keeps the prompt's cells like any other. So
embedding a prefix that a slot has just generated costs the few tokens that differ.
With embeddings on llama.cpp computes every token's output (and logits), which only
matters for the tokens actually prefilled.

A *scoring* job (``Job.score``: one token list per sibling) generates nothing: its
prompt is prefilled once like a generation job's, each sibling gets the prompt's cells
as a generation sibling does, and then its continuation tokens are prefilled with
logits asked for at every one, so the logits after token ``j`` give the logprob of
token ``j + 1`` (the first from the prompt's last logits). The continuations of every
scoring sibling in flight go into shared decode calls of up to ``n_batch`` tokens,
the earliest started first, at most ``score_chunk`` tokens of one sequence a call.
Logprobs come from the same computation as a generation sequence's (``_logprob``), but
llama.cpp's CPU kernels do not compute a row of a many-token batch bit for bit as they
compute a one-token one: with smollm2-135m (Q4_1) a continuation's logprobs moved by up
to about 0.15 against those its greedy generation reported. ``score_chunk=1`` feeds one
token per sequence a call, as decoding does, and then (with the prompt prefilled as
generation prefilled it) the logprobs are generation's exactly, at decoding's speed.

A scoring job with ``Job.hidden`` also reads the final hidden state (after the last
norm, as an embedding job does) at every row it computes logits for: its continuation
tokens but the last, whose rows predict the next token. ``llama_set_embeddings`` is on
for the decode calls that hold such a row only; every row of a scoring call asks for
logits already, so the rows computed (and the logits) are the same with it on, and the
price is copying the hidden rows out. The answer is the row of the continuation's
second-to-last token (the one whose logits predict the last) and the mean of all its
rows (``HiddenStates``); a continuation of fewer than two tokens has no row of its own
and gets none. Only the final layer is captured: llama.cpp's API hands out the output
of the last norm and nothing before it. An intermediate layer's tensor is reachable
only through the graph eval callback (``cb_eval``, a context parameter), which llama.cpp
calls for every node of every graph it computes; through ctypes that is a Python call
per node in every decode call, generation's included, so this engine installs none.

A generation job whose request asks for ``hidden`` reads the same rows while it
decodes: ``llama_set_embeddings`` is on for the steps that hold one of its sequences,
and each step's row of a sequence (the token it fed) is added to that sequence's sum.
The rows are those a scoring job would read for the generated tokens: when the model
ends a sequence, the row that predicted the end (its last fed token's) is taken back
out, and a sequence cut by a stop string or the token limit never fed its last token.
As with scoring, a one-token row is not bit for bit a row of a many-token prefill.
"""

from __future__ import annotations

import codecs
import ctypes
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ponder.core.engine import ContinuationLogprobs, Embedding
from ponder.core.errors import EngineError
from ponder.core.types import (
    Completion,
    FinishReason,
    GenRequest,
    HiddenStates,
    TokenLogprob,
    Usage,
)

Logits = npt.NDArray[np.float32]
Outcome = list[Completion] | list[Embedding] | list[ContinuationLogprobs] | BaseException

# llama_token_data is {int32 id; float logit; float p}: 12 bytes, no padding.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


@dataclass(frozen=True)
class EngineStats:
    """Counters of the decode loop since the engine started.

    ``max_batch`` is the most sequences decoded together in one step: above 1 it
    shows that siblings, or concurrent requests, shared a batch. ``prefill_tokens``
    counts prompt tokens computed, ``reused_tokens`` prompt tokens served from a
    slot's cells instead.
    """

    decode_steps: int = 0
    max_batch: int = 0
    prefill_tokens: int = 0
    reused_tokens: int = 0
    sampled_tokens: int = 0


@dataclass(eq=False)
class Job:
    """One tokenized request on its way through the loop.

    ``max_new`` is ``request.max_tokens`` capped to what a slot can hold after the
    prompt; ``seeds`` has one seed per sibling. ``on_done`` is called once, from the
    worker thread, with the ``n`` completions or the exception that ended the job.
    ``embed`` makes it an embedding job, answered with one :class:`Embedding`;
    ``score`` a scoring job (one continuation's tokens per sibling, ``request.n`` of
    them), answered with a :class:`ContinuationLogprobs` per continuation; with
    ``hidden`` those carry the continuations' final hidden states as well.
    Setting ``cancelled`` (from any thread) makes the loop drop the job unanswered.
    """

    request: GenRequest
    prompt: list[int]
    max_new: int
    seeds: list[int]
    on_done: Callable[[Outcome], None]
    cancelled: bool = False
    embed: bool = False
    score: list[list[int]] | None = None
    hidden: bool = False
    results: list[Completion | None] = field(init=False)
    scored: list[ContinuationLogprobs | None] = field(init=False)
    reused: int = 0  # prompt tokens found in the slot's cells, not prefilled
    started: int = 0
    running: int = 0
    first_logits: Logits | None = None
    spare: list[int] = field(default_factory=list)  # slots that hold just the prompt
    closed: bool = False

    def __post_init__(self) -> None:
        self.results = [None] * self.request.n
        self.scored = [None] * self.request.n

    @property
    def unstarted(self) -> int:
        return self.request.n - self.started


@dataclass(eq=False)
class _Seq:
    """One sibling being decoded in a slot."""

    job: Job
    index: int
    slot: int
    sampler: Any
    pos: int  # position of ``pending``; cells before it hold prompt + decoded tokens
    decoder: codecs.IncrementalDecoder
    pending: int = -1  # sampled, not decoded yet
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[TokenLogprob] | None = None
    stop_sequence: str | None = None
    # a confidence stop's sliding window: the last token confidences and their sum
    window: deque[float] = field(default_factory=deque)
    window_sum: float = 0.0
    # with ``request.hidden``: the sum of the fed tokens' hidden rows, the last two rows
    hidden_sum: npt.NDArray[np.float64] | None = None
    hidden_last: npt.NDArray[np.float32] | None = None
    hidden_prev: npt.NDArray[np.float32] | None = None


@dataclass(eq=False)
class _ScoreSeq:
    """One continuation being scored in a slot: ``fed`` of its tokens are in the
    slot's cells after the prompt, and ``logprobs`` holds one more than that. A job
    that asks for hidden states keeps the sum of the fed tokens' hidden rows (in
    float64) and the latest row."""

    job: Job
    index: int
    slot: int
    tokens: list[int]
    fed: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)
    hidden_sum: npt.NDArray[np.float64] | None = None
    hidden_last: npt.NDArray[np.float32] | None = None

    @property
    def todo(self) -> int:
        """Tokens still to prefill: all but the last, whose logits nobody needs."""
        return len(self.tokens) - 1 - self.fed


class DecodeLoop:
    """Owns a llama.cpp context in a worker thread and decodes jobs in shared batches."""

    def __init__(
        self,
        lib: Any,
        ctx: Any,
        vocab: Any,
        *,
        n_slots: int,
        n_batch: int,
        n_embd: int = 0,
        prefix_reuse: bool = True,
        score_chunk: int | None = None,
    ) -> None:
        self._lib = lib
        self._n_embd = n_embd
        self._prefix_reuse = prefix_reuse
        self._ctx = ctx
        self._vocab = vocab
        self._mem = lib.llama_get_memory(ctx)
        self._n_vocab = int(lib.llama_vocab_n_tokens(vocab))
        self._n_batch = n_batch
        self._batch = lib.llama_batch_init(max(n_batch, n_slots), 0, 1)
        self._ids = np.arange(self._n_vocab, dtype=np.int32)
        self._pieces: dict[int, bytes] = {}
        self._n_slots = n_slots
        self._free = list(range(n_slots))
        self._held: list[list[int]] = [[] for _ in range(n_slots)]  # tokens in a free slot
        self._running: list[_Seq] = []
        self._scoring: list[_ScoreSeq] = []
        self._score_chunk = score_chunk or n_batch
        self._waiting: deque[Job] = deque()  # not prefilled yet
        self._prefilled: list[Job] = []  # prefilled, with siblings still to start
        self._inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._steps = 0
        self._max_batch = 0
        self._prefill_tokens = 0
        self._reused_tokens = 0
        self._sampled_tokens = 0
        self._thread = threading.Thread(target=self._run, name="ponder-llamacpp", daemon=True)
        self._thread.start()

    # -- front side (any thread) ---------------------------------------------------

    def submit(self, job: Job) -> None:
        self._inbox.put(job)

    def close(self) -> None:
        """Stop the worker, failing unfinished jobs; the caller then frees the context."""
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()

    def stats(self) -> EngineStats:
        return EngineStats(
            decode_steps=self._steps,
            max_batch=self._max_batch,
            prefill_tokens=self._prefill_tokens,
            reused_tokens=self._reused_tokens,
            sampled_tokens=self._sampled_tokens,
        )

    # -- worker --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._take_inbox(block=not self._has_work()):
                try:
                    self._drop_cancelled()
                    self._admit()
                    busy = bool(self._running or self._scoring)
                    if self._running:
                        self._step()
                    if self._scoring:
                        self._score_step()
                    if not busy and self._has_work():
                        # with every slot free, admission cannot stall
                        raise EngineError("the llama.cpp scheduler could not admit any work")
                except EngineError as exc:
                    self._fail_all(exc)
                except Exception as exc:  # a broken llama.cpp call fails the jobs, not the worker
                    self._fail_all(EngineError(f"llama.cpp decoding failed: {exc!r}"))
        finally:
            self._fail_all(EngineError("the engine was closed before the request finished"))
            self._lib.llama_batch_free(self._batch)

    def _has_work(self) -> bool:
        return bool(self._running or self._scoring or self._waiting or self._prefilled)

    def _take_inbox(self, *, block: bool) -> bool:
        """Move queued jobs to the waiting line; False once close() was asked."""
        try:
            item = self._inbox.get(block=block)
            while True:
                if item is None:
                    return False
                self._waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return True

    # -- slots ---------------------------------------------------------------------

    def _take_slot(self, prompt: list[int] | None = None) -> tuple[int, int]:
        """A free slot and how many of ``prompt``'s tokens its cells already hold.

        Without a prompt (the slot will be overwritten) the slot holding least is
        taken, to keep the others' cells for later prompts.
        """

        def shared(slot: int) -> int:
            if prompt is None or not self._prefix_reuse:
                return 0
            n = 0
            for a, b in zip(self._held[slot], prompt, strict=False):
                if a != b:
                    break
                n += 1
            return n

        slot = max(self._free, key=lambda s: (shared(s), -len(self._held[s])))
        self._free.remove(slot)
        reuse = shared(slot)
        self._held[slot] = []
        return slot, reuse

    def _free_slot(self, slot: int, held: list[int] | None = None) -> None:
        """Return ``slot``, keeping the cells of ``held`` tokens for a later prompt."""
        if held:
            self._held[slot] = held
        else:
            self._lib.llama_memory_seq_rm(self._mem, slot, -1, -1)
            self._held[slot] = []
        self._free.append(slot)

    # -- scheduling ------------------------------------------------------------------

    def _admit(self) -> None:
        """Fill free slots: siblings of prefilled jobs first (their prompt is cached),
        then new jobs in arrival order."""
        while True:
            for job in list(self._prefilled):
                self._start_siblings(job)
            if not (self._free and self._waiting):
                return
            job = self._waiting.popleft()
            slot, reuse = self._take_slot(job.prompt)
            if job.embed:
                self._embed(job, slot, min(reuse, len(job.prompt) - 1))
            elif self._prefill(job, slot, min(reuse, len(job.prompt) - 1)):
                job.spare.append(slot)

    def _start_siblings(self, job: Job) -> None:
        while job.unstarted:
            if job.spare:
                slot = job.spare.pop()
            elif self._free:
                slot, _ = self._take_slot()
                self._copy_prompt(job, slot)
            else:
                return
            self._start_sibling(job, slot)

    def _copy_prompt(self, job: Job, slot: int) -> None:
        """Give ``slot`` the job's prompt cells, copied from a slot that holds them.

        llama.cpp copies between streams only whole (``p0 = p1 = -1``), so cells a
        running sibling generated are copied too, then trimmed off.
        """
        running = (s.slot for s in self._running if s.job is job)
        scoring = (s.slot for s in self._scoring if s.job is job)
        source = job.spare[-1] if job.spare else next(itertools.chain(running, scoring))
        self._lib.llama_memory_seq_cp(self._mem, source, slot, -1, -1)
        self._lib.llama_memory_seq_rm(self._mem, slot, len(job.prompt), -1)

    def _prefill(self, job: Job, slot: int, reuse: int) -> bool:
        """Prefill a generation job and keep the logits its siblings start from."""
        n_last = self._compute_prompt(job, slot, reuse)
        if n_last is None:
            return False
        row = self._lib.llama_get_logits_ith(self._ctx, n_last - 1)
        job.first_logits = np.ctypeslib.as_array(row, shape=(self._n_vocab,)).copy()
        self._prefilled.append(job)
        return True

    def _embed(self, job: Job, slot: int, reuse: int) -> None:
        """Answer an embedding job: the hidden state after its last prompt token."""
        lib = self._lib
        lib.llama_set_embeddings(self._ctx, True)
        try:
            n_last = self._compute_prompt(job, slot, reuse)
            if n_last is None:
                return
            row = lib.llama_get_embeddings_ith(self._ctx, n_last - 1)
            if not row:
                self._free_slot(slot)
                self._deliver(job, EngineError("llama.cpp returned no embedding"))
                return
            vector = np.ctypeslib.as_array(row, shape=(self._n_embd,)).astype(np.float32)
        finally:
            lib.llama_set_embeddings(self._ctx, False)
        self._free_slot(slot, list(job.prompt))
        usage = Usage(prompt_tokens=len(job.prompt) - reuse, cached_tokens=reuse, calls=1)
        self._deliver(job, [Embedding(vector, usage)])

    def _compute_prompt(self, job: Job, slot: int, reuse: int) -> int | None:
        """Compute the prompt after its first ``reuse`` tokens (already in the slot);
        the batch index of the last token's output, or None when decoding failed (the
        job has been answered with the error)."""
        lib, batch, prompt = self._lib, self._batch, job.prompt
        lib.llama_memory_seq_rm(self._mem, slot, reuse, -1)
        n_last = 0
        for start in range(reuse, len(prompt), self._n_batch):
            chunk = prompt[start : start + self._n_batch]
            for i, token in enumerate(chunk):
                # llama.cpp outputs every token of an embedding call anyway
                self._set_token(i, token, start + i, slot, logits=job.embed)
            n_last = len(chunk)
            batch.logits[n_last - 1] = start + n_last == len(prompt)
            batch.n_tokens = n_last
            rc = lib.llama_decode(self._ctx, batch)
            if rc != 0:
                self._free_slot(slot)
                self._deliver(
                    job,
                    EngineError(
                        f"llama_decode returned {rc} while prefilling a {len(prompt)}-token prompt"
                    ),
                )
                return None
        job.reused = reuse
        self._prefill_tokens += len(prompt) - reuse
        self._reused_tokens += reuse
        return n_last

    def _start_sibling(self, job: Job, slot: int) -> None:
        """Start the job's next sibling in ``slot``, whose cells hold exactly the prompt."""
        assert job.first_logits is not None
        if job.score is not None:
            self._start_scoring(job, slot)
            return
        index = job.started
        job.started += 1
        job.running += 1
        req = job.request
        seq = _Seq(
            job=job,
            index=index,
            slot=slot,
            sampler=self._make_sampler(req, job.seeds[index]),
            pos=len(job.prompt),
            decoder=codecs.getincrementaldecoder("utf-8")(errors="ignore"),
            logprobs=[] if req.wants_logprobs else None,
        )
        self._running.append(seq)
        logits = job.first_logits
        self._all_started(job)
        self._accept(seq, self._sample_from(seq.sampler, logits), logits)

    def _all_started(self, job: Job) -> None:
        """Once the job's last sibling has started, drop its first logits and the slots
        of siblings that finished on their first token."""
        if job.unstarted:
            return
        job.first_logits = None
        self._prefilled.remove(job)
        for spare in job.spare:
            self._free_slot(spare, list(job.prompt))
        job.spare.clear()

    def _start_scoring(self, job: Job, slot: int) -> None:
        """Start scoring the job's next continuation in ``slot`` (cells: the prompt);
        its first token's logprob comes from the prompt's last logits."""
        assert job.score is not None and job.first_logits is not None
        index = job.started
        job.started += 1
        job.running += 1
        seq = _ScoreSeq(job=job, index=index, slot=slot, tokens=job.score[index])
        if seq.tokens:
            k = job.request.top_logprobs
            seq.logprobs.append(self._logprob(seq.tokens[0], job.first_logits, k))
        self._all_started(job)
        self._scoring.append(seq)
        if seq.todo <= 0:
            self._finish_scoring(seq)

    def _score_step(self) -> None:
        """Prefill the next tokens of the scoring sequences, earliest first, up to
        ``n_batch`` tokens in one call (``score_chunk`` of one sequence) with logits at
        every token, and take from each
        row the logprob of the token after it."""
        lib, placed, n = self._lib, [], 0
        for seq in self._scoring:
            take = min(self._n_batch - n, seq.todo, self._score_chunk)
            if take <= 0:
                break
            base = len(seq.job.prompt) + seq.fed
            for j in range(take):
                self._set_token(n + j, seq.tokens[seq.fed + j], base + j, seq.slot, logits=True)
            placed.append((seq, n, take))
            n += take
        self._batch.n_tokens = n
        hidden = any(seq.job.hidden for seq, _, _ in placed)
        if hidden:
            lib.llama_set_embeddings(self._ctx, True)
        try:
            rc = lib.llama_decode(self._ctx, self._batch)
            if rc == 0 and hidden:
                for seq, first, take in placed:
                    if seq.job.hidden:
                        self._take_hidden(seq, first, take)
        finally:
            if hidden:
                lib.llama_set_embeddings(self._ctx, False)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc} scoring {len(placed)} continuations")
        self._steps += 1
        self._max_batch = max(self._max_batch, len(placed))
        self._prefill_tokens += n
        for seq, first, take in placed:
            k = seq.job.request.top_logprobs
            for j in range(take):
                row = lib.llama_get_logits_ith(self._ctx, first + j)
                logits = np.ctypeslib.as_array(row, shape=(self._n_vocab,))
                seq.logprobs.append(self._logprob(seq.tokens[seq.fed + j + 1], logits, k))
            seq.fed += take
            if seq.todo <= 0:
                self._finish_scoring(seq)

    def _take_hidden(self, seq: _ScoreSeq, first: int, take: int) -> None:
        """Add the hidden rows ``first .. first + take - 1`` of the last decode call (the
        sequence's newly fed tokens) to its sum, and keep the last of them."""
        rows = np.empty((take, self._n_embd), dtype=np.float32)
        for j in range(take):
            row = self._lib.llama_get_embeddings_ith(self._ctx, first + j)
            if not row:
                raise EngineError("llama.cpp returned no hidden state for a scored token")
            rows[j] = np.ctypeslib.as_array(row, shape=(self._n_embd,))
        total = rows.sum(axis=0, dtype=np.float64)
        seq.hidden_sum = total if seq.hidden_sum is None else seq.hidden_sum + total
        seq.hidden_last = rows[-1].copy()

    def _finish_scoring(self, seq: _ScoreSeq) -> None:
        """Answer one continuation; the slot goes to the next sibling (trimmed to the
        prompt) or back to the free slots with what it holds."""
        job = seq.job
        n_prompt = len(job.prompt)
        first = seq.index == 0
        usage = Usage(
            prompt_tokens=(n_prompt - job.reused if first else 0) + seq.fed,
            cached_tokens=job.reused if first else n_prompt,
            calls=1 if first else 0,
        )
        hidden = None
        if seq.hidden_sum is not None and seq.hidden_last is not None:
            mean = (seq.hidden_sum / seq.fed).astype(np.float32)
            hidden = HiddenStates(seq.hidden_last, mean, seq.fed)
        job.scored[seq.index] = ContinuationLogprobs(tuple(seq.logprobs), usage, hidden)
        self._scoring.remove(seq)
        job.running -= 1
        if job.unstarted:
            self._lib.llama_memory_seq_rm(self._mem, seq.slot, n_prompt, -1)
            job.spare.append(seq.slot)
        else:
            self._free_slot(seq.slot, job.prompt + seq.tokens[: seq.fed])
        if not job.unstarted and not job.running:
            self._deliver(job, [c for c in job.scored if c is not None])

    def _step(self) -> None:
        """Decode every running sequence's pending token in one batch, then sample each."""
        lib, batch, seqs = self._lib, self._batch, list(self._running)
        for i, seq in enumerate(seqs):
            self._set_token(i, seq.pending, seq.pos, seq.slot, logits=True)
        batch.n_tokens = len(seqs)
        hidden = any(seq.job.request.hidden for seq in seqs)
        if hidden:  # every row of a decode step has its output already
            lib.llama_set_embeddings(self._ctx, True)
        try:
            rc = lib.llama_decode(self._ctx, batch)
            if rc == 0 and hidden:
                for i, seq in enumerate(seqs):
                    if seq.job.request.hidden:
                        self._take_decoded_hidden(seq, i)
        finally:
            if hidden:
                lib.llama_set_embeddings(self._ctx, False)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc} on a batch of {len(seqs)} sequences")
        self._steps += 1
        self._max_batch = max(self._max_batch, len(seqs))
        for i, seq in enumerate(seqs):
            seq.pos += 1
            token = int(lib.llama_sampler_sample(seq.sampler, self._ctx, i))
            logits = None
            if seq.logprobs is not None:
                row = lib.llama_get_logits_ith(self._ctx, i)
                logits = np.ctypeslib.as_array(row, shape=(self._n_vocab,))
            self._accept(seq, token, logits)

    def _take_decoded_hidden(self, seq: _Seq, i: int) -> None:
        """Add row ``i`` of the last decode call (the sequence's newest fed token) to its
        hidden sum, and keep it and the row before it."""
        row = self._lib.llama_get_embeddings_ith(self._ctx, i)
        if not row:
            raise EngineError("llama.cpp returned no hidden state for a decoded token")
        vector = np.ctypeslib.as_array(row, shape=(self._n_embd,)).astype(np.float32)
        seq.hidden_sum = vector.astype(np.float64) + (
            0.0 if seq.hidden_sum is None else seq.hidden_sum
        )
        seq.hidden_prev, seq.hidden_last = seq.hidden_last, vector

    def _generated_hidden(self, seq: _Seq, fed: int) -> HiddenStates | None:
        """The hidden states of a finished sequence over the rows ``HiddenStates``
        defines (tokens ``0 .. m - 2`` of its ``m``), from the ``fed`` rows it decoded:
        those are one more when the model ended the sequence (the last predicted the
        end-of-generation token, and is left out)."""
        rows = len(seq.tokens) - 1
        if seq.hidden_sum is None or seq.hidden_last is None or rows < 1:
            return None
        total, last = seq.hidden_sum, seq.hidden_last
        if fed > rows:
            if seq.hidden_prev is None:
                return None
            total, last = total - last, seq.hidden_prev
        return HiddenStates(last, (total / rows).astype(np.float32), rows)

    def _set_token(self, i: int, token: int, pos: int, slot: int, *, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = slot
        batch.logits[i] = logits

    def _accept(self, seq: _Seq, token: int, logits: Logits | None) -> None:
        """Record a sampled token and finish the sequence if it ends here.

        An end-of-generation token ends the sequence and is not counted or shown,
        as llama-cpp-python and OpenAI-compatible servers do.
        """
        self._sampled_tokens += 1
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            self._finish(seq, "stop")
            return
        seq.tokens.append(token)
        req = seq.job.request
        if seq.logprobs is not None and logits is not None:
            seq.logprobs.append(self._logprob(token, logits, req.top_logprobs))
        seen = len(seq.text)
        seq.text += seq.decoder.decode(self._piece(token))
        if req.stop:
            found = _find_stop(seq.text, seen, req.stop)
            if found is not None:
                cut, seq.stop_sequence = found
                seq.text = seq.text[:cut]
                self._finish(seq, "stop", flush=False)
                return
        if (
            seq.logprobs
            and req.confidence_stop is not None
            and self._confidence_dropped(seq, seq.logprobs[-1].confidence)
        ):
            self._finish(seq, "confidence")
            return
        if len(seq.tokens) >= seq.job.max_new:
            self._finish(seq, "length")
            return
        seq.pending = token

    def _confidence_dropped(self, seq: _Seq, confidence: float) -> bool:
        """Slide the sequence's confidence window over its newest token; True when the
        window is full and its mean is below the request's threshold (the rule of
        ``ponder.core.types.ConfidenceStop``)."""
        rule = seq.job.request.confidence_stop
        assert rule is not None
        seq.window.append(confidence)
        seq.window_sum += confidence
        if len(seq.window) > rule.window:
            seq.window_sum -= seq.window.popleft()
        return len(seq.window) == rule.window and seq.window_sum / rule.window < rule.threshold

    def _finish(self, seq: _Seq, reason: FinishReason, *, flush: bool = True) -> None:
        job = seq.job
        if flush:
            seq.text += seq.decoder.decode(b"", final=True)
        n_prompt = len(job.prompt)
        first = seq.index == 0
        job.results[seq.index] = Completion(
            text=seq.text,
            finish_reason=reason,
            usage=Usage(
                prompt_tokens=n_prompt - job.reused if first else 0,
                cached_tokens=job.reused if first else n_prompt,
                completion_tokens=len(seq.tokens),
                calls=1 if first else 0,
            ),
            logprobs=tuple(seq.logprobs) if seq.logprobs is not None else None,
            stop_sequence=seq.stop_sequence,
            hidden=self._generated_hidden(seq, seq.pos - n_prompt) if job.request.hidden else None,
        )
        self._release(seq)
        if job.unstarted:  # keep the prompt's cells for the next sibling
            self._lib.llama_memory_seq_rm(self._mem, seq.slot, n_prompt, -1)
            job.spare.append(seq.slot)
        else:
            decoded = seq.tokens[: seq.pos - n_prompt]
            self._free_slot(seq.slot, job.prompt + decoded)
        if not job.unstarted and not job.running:
            self._deliver(job, [c for c in job.results if c is not None])

    def _release(self, seq: _Seq) -> None:
        self._lib.llama_sampler_free(seq.sampler)
        self._running.remove(seq)
        seq.job.running -= 1

    def _drop_cancelled(self) -> None:
        """Free the slots of jobs whose caller stopped waiting."""
        jobs = {s.job for s in self._running if s.job.cancelled}
        jobs |= {s.job for s in self._scoring if s.job.cancelled}
        jobs |= {j for j in self._prefilled if j.cancelled}
        for job in jobs:
            for seq in [s for s in self._running if s.job is job]:
                self._release(seq)
                self._free_slot(seq.slot)
            for scoring in [s for s in self._scoring if s.job is job]:
                self._scoring.remove(scoring)
                self._free_slot(scoring.slot)
            for slot in job.spare:
                self._free_slot(slot)
            job.spare.clear()
            if job in self._prefilled:
                self._prefilled.remove(job)
            self._deliver(job, EngineError("cancelled"))
        if any(j.cancelled for j in self._waiting):
            self._waiting = deque(j for j in self._waiting if not j.cancelled)

    def _fail_all(self, error: EngineError) -> None:
        """End every job in flight with ``error`` and empty the KV cache."""
        jobs = [s.job for s in self._running] + self._prefilled + list(self._waiting)
        jobs += [s.job for s in self._scoring]
        for seq in self._running:
            self._lib.llama_sampler_free(seq.sampler)
        self._running.clear()
        self._scoring.clear()
        self._prefilled.clear()
        self._waiting.clear()
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                jobs.append(item)
        for job in jobs:
            job.spare.clear()
            self._deliver(job, error)
        self._lib.llama_memory_clear(self._mem, True)
        self._free = list(range(self._n_slots))
        self._held = [[] for _ in range(self._n_slots)]

    def _deliver(self, job: Job, outcome: Outcome) -> None:
        if job.closed:
            return
        job.closed = True
        job.first_logits = None
        if not job.cancelled:
            job.on_done(outcome)

    # -- sampling and text ---------------------------------------------------------

    def _make_sampler(self, req: GenRequest, seed: int) -> Any:
        """A llama.cpp sampler chain for one sibling.

        Temperature comes first, then top-k and top-p, in the order OpenAI-compatible
        servers such as vLLM apply them; temperature 0 is greedy.
        """
        lib = self._lib
        params = lib.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = lib.llama_sampler_chain_init(params)
        if req.temperature == 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(req.temperature))
        if req.top_k > 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(req.top_k))
        if req.top_p < 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(req.top_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
        return chain

    def _sample_from(self, sampler: Any, logits: Logits) -> int:
        """Sample with ``sampler`` from saved logits (a sibling's first token)."""
        lib = self._lib
        cand = np.empty(self._n_vocab, dtype=_TOKEN_DATA)
        cand["id"] = self._ids
        cand["logit"] = logits
        cand["p"] = 0.0
        arr = lib.llama_token_data_array(
            data=cand.ctypes.data_as(ctypes.POINTER(lib.llama_token_data)),
            size=self._n_vocab,
            selected=-1,
            sorted=False,
        )
        lib.llama_sampler_apply(sampler, ctypes.byref(arr))
        if not 0 <= arr.selected < arr.size:
            raise EngineError("the llama.cpp sampler selected no token")
        token = int(arr.data[arr.selected].id)
        lib.llama_sampler_accept(sampler, token)
        return token

    def _logprob(self, token: int, logits: Logits, k: int) -> TokenLogprob:
        """Logprob of ``token`` and the top ``k`` alternatives under the raw model
        distribution (log-softmax of the logits at temperature 1), whatever the
        sampler did; this is the distribution verifiers and confidence measures expect.
        """
        x = logits.astype(np.float64)
        top_value = float(x.max())
        log_z = top_value + float(np.log(np.exp(x - top_value).sum()))
        alternatives: tuple[tuple[str, float], ...] = ()
        if k > 0:
            best = np.argpartition(x, -k)[-k:]
            best = best[np.argsort(-x[best], kind="stable")]
            alternatives = tuple((self._token_text(int(t)), float(x[t]) - log_z) for t in best)
        return TokenLogprob(self._token_text(token), float(x[token]) - log_z, alternatives)

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            piece = buf.raw[: max(n, 0)]
            self._pieces[token] = piece
        return piece

    def _token_text(self, token: int) -> str:
        return self._piece(token).decode("utf-8", errors="replace")


def _find_stop(text: str, seen: int, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """Where the earliest stop string that ends after ``text[:seen]`` starts, and which."""
    found: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop, max(0, seen - len(stop) + 1))
        if at >= 0 and (found is None or at < found[0]):
            found = (at, stop)
    return found
