"""MATH-500: the 500-problem test split of MATH used by the test-time-compute papers."""

from __future__ import annotations

from ponder.tasks.hub import HubTask

__all__ = ["Math500Task"]


class Math500Task(HubTask):
    """MATH-500 from a JSONL file or the hub (HuggingFaceH4/MATH-500).

    Fields: ``problem``, ``answer`` (LaTeX) and ``unique_id`` (the problem id);
    ``subject`` and ``level`` go to ``Problem.meta`` when present.
    """

    task_name = "math500"
    hub_path = "HuggingFaceH4/MATH-500"
    fields = ("problem", "answer", "unique_id")
    id_field = "unique_id"
    meta_fields = ("subject", "level")
