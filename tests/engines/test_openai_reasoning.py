"""A reasoning server's ``reasoning_content`` (or ``reasoning``) comes back in front of
the answer, in the form ``ponder.core.reasoning`` splits, and answers read the content."""

from __future__ import annotations

from typing import Any

import pytest
from tests.engines.test_openai_engine import Recorder, chat, chat_reply, engine

from ponder.core.reasoning import split_reasoning


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
async def test_the_server_thinking_goes_in_front_of_the_answer(key: str) -> None:
    def reply(body: dict[str, Any], i: int) -> dict[str, Any]:
        r = chat_reply(["It is 4.", "Four."], completion=30)
        r["choices"][0]["message"][key] = "2 and 2 make 4, longer thinking here"
        r["choices"][1]["message"][key] = None  # a sibling that did not think
        return r

    (comps,) = await engine(Recorder(reply)).generate([chat(n=2)])
    first = split_reasoning(comps[0].text)
    assert first.reasoning == "2 and 2 make 4, longer thinking here"
    assert first.answer == "It is 4."
    assert comps[1].text == "Four."
    # the server's completion tokens include the thinking; the longer text gets more
    assert comps[0].usage.completion_tokens + comps[1].usage.completion_tokens == 30
    assert comps[0].usage.completion_tokens > comps[1].usage.completion_tokens
