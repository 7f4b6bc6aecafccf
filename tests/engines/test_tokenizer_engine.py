"""``tokenizer_engine``: an embedded engine loaded only for its vocabulary."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import ponder.engines.llamacpp as llamacpp
from ponder.core.errors import ConfigError
from ponder.engines.registry import tokenizer_engine


def test_a_tokenizer_engine_holds_one_small_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[Any, ...]] = []

    def record(path: str, **options: Any) -> str:
        made.append((path, options))
        return "engine"

    monkeypatch.setattr(llamacpp, "LlamaCppEngine", record)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    engine: object = tokenizer_engine(str(model))
    assert engine == "engine"
    assert made == [(str(model), {"n_parallel": 1, "n_ctx": 256})]
    with pytest.raises(ConfigError, match="model file not found"):
        tokenizer_engine(str(tmp_path / "absent.gguf"))


def test_a_tokenizer_engine_counts_tokens(smollm2_path: Path) -> None:
    engine = tokenizer_engine(str(smollm2_path))
    try:
        assert engine.count_tokens("") == 0
        assert engine.count_tokens("one two three") >= 3
    finally:
        asyncio.run(engine.aclose())
