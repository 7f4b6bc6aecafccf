"""LlamaCppEngine and tools on real models: qwen2.5-coder-0.5b, whose GGUF template
shows tools in the Hermes format, makes the call a named tool_choice forces; smollm2's
template shows no tools, so the engine says it cannot take them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ponder.core.errors import CapabilityMissing
from ponder.core.types import GenRequest, Message, Tool, ToolChoice
from ponder.engines import models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
llamacpp = pytest.importorskip("ponder.engines.llamacpp")
pytest.importorskip("llama_cpp")

SMALL_QWEN = "qwen2.5-coder-0.5b"
WEATHER = Tool(
    "get_weather",
    "Get the current weather in a city.",
    json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}),
)
CHAT = (Message("user", "What is the weather like in Oslo?"),)


def test_a_forced_call_on_qwen_is_read_into_tool_calls() -> None:
    if not models.is_ready(SMALL_QWEN):
        pytest.skip(f"{SMALL_QWEN} is not pulled: run `ponder models pull {SMALL_QWEN}`")

    async def run() -> None:
        async with llamacpp.LlamaCppEngine(models.model_path(SMALL_QWEN), n_ctx=1024) as eng:
            assert eng.capabilities.tools
            plain = GenRequest(messages=CHAT, max_tokens=24)
            forced = GenRequest(
                messages=CHAT, max_tokens=24, tools=(WEATHER,),
                tool_choice=ToolChoice("function", "get_weather"),
            )  # fmt: skip
            # the tools and the opening of the call are in the prompt
            assert eng.prompt_tokens(forced) > eng.prompt_tokens(plain) + 40
            [[done]] = await eng.generate([forced])
            assert [c.name for c in done.tool_calls] == ["get_weather"], done.text
            assert "oslo" in json.loads(done.tool_calls[0].arguments)["city"].lower()

    asyncio.run(run())


def test_a_template_without_tools_cannot_take_them(smollm2_path: Path) -> None:
    async def run() -> None:
        async with llamacpp.LlamaCppEngine(smollm2_path, n_ctx=512, n_parallel=1) as eng:
            assert not eng.capabilities.tools
            with pytest.raises(CapabilityMissing, match="shows no tools"):
                await eng.generate([GenRequest(messages=CHAT, max_tokens=4, tools=(WEATHER,))])
            # tool_choice none shows no tools, so it is an ordinary chat
            none = GenRequest(
                messages=CHAT, max_tokens=4, tools=(WEATHER,), tool_choice=ToolChoice("none")
            )
            [[done]] = await eng.generate([none])
            assert done.tool_calls == () and done.usage.completion_tokens > 0

    asyncio.run(run())
