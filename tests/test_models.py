import hashlib
import os

import pytest

from ponder.core.errors import ConfigError, PonderError
from ponder.engines import models


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A two-part model whose parts sit in importable packages made here."""
    site = tmp_path / "site"
    chunks = [os.urandom(3000), os.urandom(1234)]
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        pkg = site / f"fakepart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        parts.append(models.Part(f"fake-part{i}", "1.0", f"fakepart{i}", f"data/part{i:02d}.bin"))
    blob = b"".join(chunks)
    model = models.BundledModel(
        "fake", "test model", tuple(parts), len(blob), hashlib.sha256(blob).hexdigest(), "none"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(models.CATALOGUE, "fake", model)
    monkeypatch.setenv("PONDER_HOME", str(tmp_path / "home"))
    return model, blob


def test_pull_assembles_verifies_and_is_idempotent(fake_model):
    _model, blob = fake_model
    assert not models.is_ready("fake")
    path = models.pull("fake", log=lambda m: None)
    assert path.read_bytes() == blob
    assert models.is_ready("fake")
    mtime = path.stat().st_mtime_ns
    assert models.pull("fake", log=lambda m: None) == path
    assert path.stat().st_mtime_ns == mtime  # not rebuilt
    assert models.resolve("fake") == path
    assert not list(path.parent.glob(".pull-*"))  # no temp files left behind


def test_corrupt_or_partial_file_is_detected_and_rebuilt(fake_model):
    _model, blob = fake_model
    path = models.pull("fake", log=lambda m: None)
    with path.open("r+b") as f:
        f.truncate(100)  # a partial file
    assert not models.is_ready("fake")
    msgs = []
    models.pull("fake", log=msgs.append)
    assert path.read_bytes() == blob
    assert any("corrupt or partial" in m for m in msgs)
    # same size, flipped byte: caught by the checksum
    data = bytearray(blob)
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not models.is_ready("fake")
    assert models.resolve("fake").read_bytes() == blob


def test_checksum_mismatch_writes_nothing(fake_model, monkeypatch):
    model, _ = fake_model
    bad = models.BundledModel(model.name, "", model.parts, model.size, "0" * 64, "none")
    monkeypatch.setitem(models.CATALOGUE, "fake", bad)
    with pytest.raises(PonderError, match="sha256"):
        models.pull("fake", log=lambda m: None)
    assert not models.model_path("fake").exists()


def test_unknown_model_and_missing_file():
    with pytest.raises(ConfigError, match="bundled models"):
        models.resolve("gpt-17")
    with pytest.raises(ConfigError, match="not found"):
        models.resolve("/nonexistent/model.gguf")


def test_catalogue_has_the_three_bundled_models():
    assert {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} <= set(models.CATALOGUE)
    assert models.DEFAULT_MODEL == "qwen2.5-coder-1.5b"
