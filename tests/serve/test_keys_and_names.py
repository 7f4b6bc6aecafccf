"""What ``ponder serve`` reads before serving: the client keys and the served name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError
from ponder.serve.accounts import read_api_keys
from ponder.serve.app import served_name


def test_keys_from_flags_and_a_file(tmp_path: Path) -> None:
    assert read_api_keys([" a ", "", "b"]) == frozenset({"a", "b"})
    path = tmp_path / "keys.txt"
    path.write_text("# clients\nc\n\n  d  \n", encoding="utf-8")
    assert read_api_keys(["a"], path) == frozenset({"a", "c", "d"})
    assert read_api_keys([], str(path)) == frozenset({"c", "d"})
    assert read_api_keys([]) == frozenset()


def test_a_key_file_that_gives_no_key_or_cannot_be_read(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# none yet\n\n", encoding="utf-8")
    message = f"--api-key-file {empty} holds no keys"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        read_api_keys([], empty)
    assert read_api_keys(["a"], empty) == frozenset({"a"})
    with pytest.raises(ConfigError, match="cannot read --api-key-file"):
        read_api_keys([], tmp_path / "absent.txt")


def test_a_gguf_file_is_served_under_its_name() -> None:
    assert served_name("/models/qwen2.5-coder-1.5b.gguf") == "qwen2.5-coder-1.5b"
    assert served_name("qwen2.5-coder-1.5b") == "qwen2.5-coder-1.5b"
