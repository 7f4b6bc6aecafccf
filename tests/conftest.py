"""Shared fixtures. Integration tests find the smollm2 model through PONDER_SMOLLM2_GGUF,
which this file points at the bundled-model cache when the model is pulled there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ponder.engines import models

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

if not os.environ.get("PONDER_SMOLLM2_GGUF") and models.is_ready("smollm2-135m"):
    os.environ["PONDER_SMOLLM2_GGUF"] = str(models.model_path("smollm2-135m"))


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    env = os.environ.get("PONDER_SMOLLM2_GGUF")
    if not env or not Path(env).is_file():
        pytest.skip("smollm2-135m is not pulled: run `ponder models pull smollm2-135m`")
    return Path(env)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data folder {SHARED_DATA} is absent")
    return SHARED_DATA
