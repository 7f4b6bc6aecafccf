"""Hugging Face process reward models: a trained PRM scores every step of a path in one
forward pass.

Two families, which differ in how a step is marked and how its score is read:

- ``qwen``, Qwen2.5-Math-PRM style (``Qwen/Qwen2.5-Math-PRM-7B``, ``-72B``): the chat of
  the system prompt below, the question as the user turn and the steps as the assistant
  turn, each step followed by ``<extra_0>``. A two-class head gives logits for every
  token; a step's score is the softmax probability of class 1 at its ``<extra_0>``.
- ``shepherd``, Math-Shepherd style (``peiyi9979/math-shepherd-mistral-7b-prm``): a plain
  causal LM over ``"{question} {step 1} ки\\n{step 2} ки..."``; at each ``ки`` the
  next-token logits of ``+`` and ``-`` give P(+) / (P(+) + P(-)).

The model's output at a step's tag depends only on the tokens before it (the models are
causal), so one pass over a whole path scores all of its steps; the steps before
``start`` (already cached) are recomputed in the same pass and dropped, which costs less
than a pass per step. Paths are sorted by length and packed into batches of at most
``max_batch_tokens`` padded tokens. The padding goes on the right, where a causal model
never looks, so a path scores the same alone or in a batch.

The Qwen checkpoints ship their own modeling code (``auto_map``). ponder does not run it
by default: the architecture is a Qwen2 backbone under ``model.`` plus a head
``score = Linear(h, h), ReLU, Linear(h, 2)``, which ponder rebuilds on transformers' own
``Qwen2Model`` so the same weights load without remote code (and with transformers
versions the remote code was not written for). ``trust_remote_code=True`` uses the
checkpoint's code instead.

Cost goes on the ledger as a ``score`` event labelled ``hfprm``: tokens forwarded as
``prompt_tokens``, forward passes as ``calls``. Loading the model is a one-off set-up and
is not charged to the problem that happens to trigger it.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any, ClassVar

from ponder.core.errors import ConfigError, MissingExtra
from ponder.core.types import Problem, Usage
from ponder.verifiers.process import Path, ProcessVerifier
from ponder.verifiers.steps import Aggregation, Segmentation, join_steps

if TYPE_CHECKING:
    from ponder.core.context import Context

STYLES = ("qwen", "shepherd")
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_STEP_TAG = "<extra_0>"
SHEPHERD_STEP_TAG = "ки"
SHEPHERD_GOOD, SHEPHERD_BAD = "+", "-"


def _import(name: str) -> Any:
    """``torch`` or ``transformers``, imported on first use (they take seconds to import
    and are an optional extra); typed ``Any`` so the type check does not need them."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingExtra(name, "hf") from exc


@functools.cache
def qwen_prm_class() -> Any:
    """The Qwen2.5-Math-PRM architecture on transformers' ``Qwen2Model``, with the
    checkpoint's parameter names (``model.*``, ``score.0.*``, ``score.2.*``) so its
    weights load as they are. ``forward`` returns the per-token logits, shape
    (batch, tokens, 2)."""
    torch = _import("torch")
    transformers = _import("transformers")

    base: Any = transformers.Qwen2PreTrainedModel

    class QwenProcessRewardModel(base):  # type: ignore[misc]
        # the checkpoints may carry the LM head of the model they were tuned from
        _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"^lm_head\."]

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.model = transformers.Qwen2Model(config)
            hidden = config.hidden_size
            self.score = torch.nn.Sequential(
                torch.nn.Linear(hidden, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, 2),
            )
            self.post_init()

        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return self.score(out.last_hidden_state)

    return QwenProcessRewardModel


@dataclass(frozen=True)
class _Encoded:
    """One path ready for the model: its token ids, the index of each step's tag token,
    and the first step whose score is wanted."""

    ids: list[int]
    tags: list[int]
    start: int


class HFPRMVerifier(ProcessVerifier):
    """A Hugging Face process reward model (see the module doc for the two styles).

    ``model`` is a local folder or a Hugging Face model id (downloading it needs network
    access). ``device`` is ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto`` (a GPU when
    torch sees one); ``dtype`` ``auto`` is bfloat16 (float16 without bf16 support) on a
    GPU and float32 on a CPU. The model loads on first use, or with :meth:`load`.
    """

    def __init__(
        self,
        model: str,
        *,
        style: str = "qwen",
        device: str = "cpu",
        dtype: str = "auto",
        segmentation: Segmentation = "blank",
        aggregation: Aggregation = "last",
        max_batch_tokens: int = 8192,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(segmentation, aggregation)
        if style not in STYLES:
            raise ConfigError(f"unknown PRM style {style!r}; choose from {', '.join(STYLES)}")
        if not _DEVICE.match(device):
            raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto")
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        if max_batch_tokens < 1:
            raise ConfigError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        if model.startswith(("/", ".", "~")) and not FilePath(model).expanduser().exists():
            raise ConfigError(f"process reward model not found: {model} does not exist")
        for package in ("torch", "transformers"):
            if importlib.util.find_spec(package) is None:
                raise MissingExtra(package, "hf")
        self.model_name = model
        self.style = style
        self.device = device
        self.dtype = dtype
        self.max_batch_tokens = max_batch_tokens
        self.trust_remote_code = trust_remote_code
        self._lock = threading.Lock()  # one load, and one forward pass at a time
        self._net: Any = None
        self._tokenizer: Any = None
        self._torch: Any = None
        self._tag_id = -1
        self._good_bad: tuple[int, int] = (-1, -1)

    @property
    def name(self) -> str:
        return f"hfprm:{self.model_name}"

    # -- loading -------------------------------------------------------------------

    def load(self) -> None:
        """Load the tokenizer and the model now (otherwise the first score does)."""
        with self._lock:
            if self._net is None:
                self._load()

    def _load(self) -> None:
        torch = _import("torch")
        transformers = _import("transformers")
        device = self._resolve_device(torch)
        dtype = self._resolve_dtype(torch, device)
        source = (
            str(FilePath(self.model_name).expanduser()) if self._is_local() else self.model_name
        )
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, trust_remote_code=self.trust_remote_code
            )
            if self.style == "qwen":
                net = self._load_qwen(transformers, source, dtype)
            else:
                net = transformers.AutoModelForCausalLM.from_pretrained(
                    source, dtype=dtype, trust_remote_code=self.trust_remote_code
                )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load process reward model {self.model_name!r}: {exc}\n"
                "pass a local folder that holds config.json, the weights and the tokenizer, "
                "or a Hugging Face model id (downloading it needs network access)"
            ) from exc
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(
                f"{self.model_name}: ponder needs a fast tokenizer (tokenizer.json) to find "
                "the step tags in the text"
            )
        self._tag_id, self._good_bad = self._special_ids(tokenizer)
        net.to(device)
        net.eval()
        self._torch, self._tokenizer, self._net = torch, tokenizer, net

    def _is_local(self) -> bool:
        return FilePath(self.model_name).expanduser().exists()

    def _load_qwen(self, transformers: Any, source: str, dtype: Any) -> Any:
        config = transformers.AutoConfig.from_pretrained(
            source, trust_remote_code=self.trust_remote_code
        )
        if self.trust_remote_code and "AutoModel" in (getattr(config, "auto_map", None) or {}):
            return transformers.AutoModel.from_pretrained(
                source, dtype=dtype, trust_remote_code=True
            )
        if config.model_type != "qwen2":
            raise ConfigError(
                f"{self.model_name} is a {config.model_type!r} model; style qwen loads "
                "Qwen2.5-Math-PRM-style checkpoints (model_type qwen2); for a causal LM "
                "PRM use style=shepherd"
            )
        net, info = qwen_prm_class().from_pretrained(
            source, config=config, dtype=dtype, output_loading_info=True
        )
        missing = [k for k in info.get("missing_keys", ()) if k.startswith("score.")]
        if missing:
            raise ConfigError(
                f"{self.model_name} has no process reward head (missing {', '.join(missing)}): "
                "it is not a Qwen2.5-Math-PRM-style checkpoint"
            )
        return net

    def _resolve_device(self, torch: Any) -> str:
        if self.device == "auto":
            if torch.cuda.is_available():
                return "cuda"
            mps = getattr(torch.backends, "mps", None)
            return "mps" if mps is not None and mps.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"device {self.device!r} asked for, but torch {torch.__version__} sees no "
                "CUDA GPU; use device=cpu (or auto)"
            )
        return self.device

    def _resolve_dtype(self, torch: Any, device: str) -> Any:
        if self.dtype != "auto":
            return getattr(torch, self.dtype)
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32

    def _special_ids(self, tokenizer: Any) -> tuple[int, tuple[int, int]]:
        """The step tag's token id, and for shepherd the ids of ``+`` and ``-`` as the
        model card finds them (the tokens of ``"+ -"`` without special tokens)."""
        if self.style == "qwen":
            tag = tokenizer.convert_tokens_to_ids(QWEN_STEP_TAG)
            if tag is None or tag == tokenizer.unk_token_id:
                raise ConfigError(
                    f"the tokenizer of {self.model_name} has no {QWEN_STEP_TAG} token; "
                    "it is not a Qwen2.5-Math-PRM-style model"
                )
            if not getattr(tokenizer, "chat_template", None):
                raise ConfigError(f"the tokenizer of {self.model_name} has no chat template")
            return int(tag), (-1, -1)
        tag_ids = tokenizer.encode(SHEPHERD_STEP_TAG, add_special_tokens=False)
        good_bad = tokenizer.encode(f"{SHEPHERD_GOOD} {SHEPHERD_BAD}", add_special_tokens=False)
        if not tag_ids or len(good_bad) != 2:
            raise ConfigError(
                f"the tokenizer of {self.model_name} does not spell {SHEPHERD_STEP_TAG!r}, "
                f"{SHEPHERD_GOOD!r} and {SHEPHERD_BAD!r} as Math-Shepherd's does "
                f"(got {tag_ids} and {good_bad}); is it a Math-Shepherd-style model?"
            )
        return int(tag_ids[-1]), (int(good_bad[0]), int(good_bad[1]))

    # -- encoding ------------------------------------------------------------------

    def render(self, question: str, steps: Sequence[str]) -> tuple[str, list[int]]:
        """The model's input text for a path, and the character offset just past each
        step's tag in it. Public so tests and users can see exactly what is scored; the
        qwen style renders with the model's chat template, so it loads the model."""
        if self.style == "qwen":
            self.load()
            # the tag is a special token: any copy of it in the text would be read as a step
            clean = [s.replace(QWEN_STEP_TAG, "") for s in steps]
            messages = [
                {"role": "system", "content": QWEN_SYSTEM},
                {"role": "user", "content": question.replace(QWEN_STEP_TAG, "")},
                {"role": "assistant", "content": QWEN_STEP_TAG.join(clean) + QWEN_STEP_TAG},
            ]
            text = self._tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=False
            )
            ends = [m.end() for m in re.finditer(re.escape(QWEN_STEP_TAG), text)]
            if len(ends) != len(steps):
                raise RuntimeError(
                    f"the chat template of {self.model_name} kept {len(ends)} of "
                    f"{len(steps)} step tags"
                )
            return str(text), ends
        # the separator a model writing these steps would have put between them
        sep = join_steps(["", ""], self.segmentation)
        text, ends = f"{question} ", []
        for k, step in enumerate(steps):
            text += (sep if k else "") + f"{step} {SHEPHERD_STEP_TAG}"
            ends.append(len(text))
        return text, ends

    def _encode(self, question: str, path: Path, start: int) -> _Encoded:
        text, ends = self.render(question, path)
        enc = self._tokenizer(
            text,
            add_special_tokens=self.style == "shepherd",  # the chat template has its own
            return_offsets_mapping=True,
        )
        ids = [int(i) for i in enc["input_ids"]]
        offsets = enc["offset_mapping"]
        tags: list[int] = []
        at = 0
        for end in ends:
            # the token that holds the tag's last character
            while at < len(offsets) and not (offsets[at][0] < end <= offsets[at][1]):
                at += 1
            if at == len(offsets) or ids[at] != self._tag_id:
                raise RuntimeError(
                    f"{self.model_name}: step {len(tags) + 1}'s tag did not tokenize to "
                    f"the step tag token {self._tag_id}"
                )
            tags.append(at)
            at += 1
        return _Encoded(ids, tags, start)

    # -- scoring -------------------------------------------------------------------

    def _batches(self, encoded: list[_Encoded]) -> list[list[int]]:
        """Indices of ``encoded`` grouped into forward passes: similar lengths together
        (little padding), at most ``max_batch_tokens`` padded tokens a pass."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
        batches: list[list[int]] = []
        for i in order:
            longest = len(encoded[i].ids)  # sorted: the newcomer is the longest
            if batches and (len(batches[-1]) + 1) * longest <= self.max_batch_tokens:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches

    def _forward(self, encoded: list[_Encoded], batch: list[int]) -> list[list[float]]:
        torch = self._torch
        rows = [encoded[i] for i in batch]
        width = max(len(r.ids) for r in rows)
        pad = self._tokenizer.pad_token_id
        pad = 0 if pad is None else int(pad)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):
            ids[b, : len(row.ids)] = torch.tensor(row.ids, dtype=torch.long)
            mask[b, : len(row.ids)] = 1
        device = next(self._net.parameters()).device
        with torch.no_grad():
            out = self._net(input_ids=ids.to(device), attention_mask=mask.to(device))
            logits = out if torch.is_tensor(out) else getattr(out, "logits", None)
            if logits is None:
                logits = out[0]
            if self.style == "qwen" and logits.shape[-1] != 2:
                raise RuntimeError(
                    f"{self.model_name} gave {logits.shape[-1]} logits a token; a "
                    "Qwen2.5-Math-PRM-style head gives 2"
                )
            scores: list[list[float]] = []
            for b, row in enumerate(rows):
                at_tags = logits[b, torch.tensor(row.tags, device=logits.device)].float()
                if self.style == "qwen":
                    p = torch.softmax(at_tags, dim=-1)[:, 1]
                else:
                    good_bad = torch.tensor(self._good_bad, device=logits.device)
                    p = torch.softmax(at_tags[:, good_bad], dim=-1)[:, 0]
                scores.append([float(x) for x in p.cpu().tolist()[row.start :]])
        return scores

    def _prepare(
        self, question: str, items: Sequence[tuple[Path, int]]
    ) -> tuple[list[_Encoded], list[list[int]]]:
        self.load()
        encoded = [self._encode(question, path, start) for path, start in items]
        return encoded, self._batches(encoded)

    def _run(
        self, encoded: list[_Encoded], batches: list[list[int]]
    ) -> tuple[list[list[float]], float]:
        scores: list[list[float]] = [[] for _ in encoded]
        with self._lock:
            t0 = time.perf_counter()
            for batch in batches:
                for i, row_scores in zip(batch, self._forward(encoded, batch), strict=True):
                    scores[i] = row_scores
            seconds = time.perf_counter() - t0
        return scores, seconds

    async def _score_from(
        self, problem: Problem, items: Sequence[tuple[Path, int]], ctx: Context
    ) -> list[list[float]]:
        # loading and forward passes block for seconds: in a thread, the event loop (and
        # the engine's requests in flight) keeps going meanwhile
        encoded, batches = await asyncio.to_thread(self._prepare, problem.question, items)
        usage = Usage(prompt_tokens=sum(len(e.ids) for e in encoded), calls=len(batches))
        ctx.ledger.check(0, calls=len(batches), prompt_tokens=usage.prompt_tokens)
        scores, seconds = await asyncio.to_thread(self._run, encoded, batches)
        ctx.ledger.record("score", usage, seconds, "hfprm")
        return scores
