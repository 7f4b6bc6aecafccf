"""When the embedded engine lets llama.cpp repack weights (``default_extra_buffers``)."""

from __future__ import annotations

import logging

import pytest

from ponder.core.errors import ConfigError
from ponder.engines import llamacpp
from ponder.engines.llamacpp import default_extra_buffers

AMX_INFO = b"CPU : SSE3 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 | REPACK = 1 | "
PLAIN_INFO = b"CPU : SSE3 = 1 | AVX512 = 1 | OPENMP = 1 | REPACK = 1 | "


class FakeLib:
    def __init__(self, info: bytes) -> None:
        self.info = info

    def llama_print_system_info(self) -> bytes:
        return self.info


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONDER_LLAMA_EXTRA_BUFFERS", raising=False)


@pytest.mark.parametrize(
    ("info", "cpu_amx", "expected"),
    [
        (AMX_INFO, True, False),
        (AMX_INFO, False, True),
        (PLAIN_INFO, True, True),
        (PLAIN_INFO, False, True),
    ],
)
def test_off_only_where_the_builds_amx_kernels_run(
    monkeypatch: pytest.MonkeyPatch, info: bytes, cpu_amx: bool, expected: bool
) -> None:
    monkeypatch.setattr(llamacpp, "_cpu_has_amx", lambda: cpu_amx)
    assert default_extra_buffers(FakeLib(info)) is expected


def test_the_fallback_says_why_and_how_to_rebuild(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(llamacpp, "_cpu_has_amx", lambda: True)
    with caplog.at_level(logging.WARNING, logger="ponder.engines.llamacpp"):
        assert default_extra_buffers(FakeLib(AMX_INFO)) is False
    assert "AMX" in caplog.text and "-mno-amx-int8" in caplog.text


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("on", True), ("0", False), ("no", False)]
)
def test_the_environment_decides(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setattr(llamacpp, "_cpu_has_amx", lambda: True)
    monkeypatch.setenv("PONDER_LLAMA_EXTRA_BUFFERS", value)
    assert default_extra_buffers(FakeLib(AMX_INFO)) is expected
    assert default_extra_buffers(FakeLib(PLAIN_INFO)) is expected


def test_a_bad_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_LLAMA_EXTRA_BUFFERS", "maybe")
    with pytest.raises(ConfigError, match="PONDER_LLAMA_EXTRA_BUFFERS"):
        default_extra_buffers(FakeLib(PLAIN_INFO))


def test_this_machines_cpu_flags_are_read() -> None:
    cpuinfo = llamacpp.Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo here")
    flags = next(
        (line.split() for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), []
    )
    assert llamacpp._cpu_has_amx() is ("amx_int8" in flags)
