"""AIME 2024: the 30 problems of AIME I and II, integer answers from 0 to 999."""

from __future__ import annotations

from types import MappingProxyType

from ponder.tasks.hub import HubTask

__all__ = ["AIME24Task"]


class AIME24Task(HubTask):
    """AIME 2024 from a JSONL file or the hub (HuggingFaceH4/aime_2024).

    Fields: ``id``, ``problem``, ``answer``; ``url`` and ``year`` go to ``Problem.meta``.
    The hub keeps these 30 problems in its ``train`` split, which ``split="test"`` reads.
    """

    task_name = "aime24"
    hub_path = "HuggingFaceH4/aime_2024"
    hub_splits = MappingProxyType({"test": "train"})
    fields = ("id", "problem", "answer")
    meta_fields = ("url", "year")
