"""llama.cpp's log lines at their true levels: warnings (such as the "control-looking
token" line of every qwen2.5 GGUF) stay hidden unless verbose, errors show."""

from __future__ import annotations

import logging

import pytest

from ponder.engines.llamacpp import _llama_log


@pytest.fixture
def llama_logger() -> logging.Logger:
    logger = logging.getLogger("llama-cpp-python")
    before = logger.level
    yield logger
    logger.setLevel(before)


def test_warnings_and_their_continuations_are_hidden_and_errors_shown(
    llama_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    llama_logger.setLevel(logging.ERROR)
    _llama_log(3, b"load: control-looking token\n", None)  # GGML_LOG_LEVEL_WARN
    _llama_log(5, b"  ... its continuation\n", None)  # CONT: the warning's level
    _llama_log(2, b"info\n", None)
    _llama_log(1, b"debug\n", None)
    assert capsys.readouterr().err == ""
    _llama_log(4, b"an error\n", None)  # GGML_LOG_LEVEL_ERROR
    _llama_log(5, b" goes on\n", None)
    assert capsys.readouterr().err == "an error\n goes on\n"


def test_verbose_shows_everything(
    llama_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    llama_logger.setLevel(logging.DEBUG)
    for level in (1, 2, 3, 4):
        _llama_log(level, f"line {level}\n".encode(), None)
    assert capsys.readouterr().err == "line 1\nline 2\nline 3\nline 4\n"
