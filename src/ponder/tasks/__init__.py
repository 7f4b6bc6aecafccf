"""Tasks: where problems come from and how answers are graded."""

from ponder.core.task import Grading, ModelGradedTask, StatusGradedTask, Task
from ponder.tasks.aime import AIME24Task
from ponder.tasks.demo import DemoTask
from ponder.tasks.freeform import FreeformTask, JudgeGradedTask
from ponder.tasks.gsm8k import GSM8KTask
from ponder.tasks.humaneval import HumanEvalTask
from ponder.tasks.identity import DataIdentity, data_identity, problem_fingerprint
from ponder.tasks.jsonl import JsonlTask, MathTask
from ponder.tasks.math500 import Math500Task
from ponder.tasks.registry import make_task, task_names

__all__ = [
    "AIME24Task",
    "DataIdentity",
    "DemoTask",
    "FreeformTask",
    "GSM8KTask",
    "Grading",
    "HumanEvalTask",
    "JsonlTask",
    "JudgeGradedTask",
    "Math500Task",
    "MathTask",
    "ModelGradedTask",
    "StatusGradedTask",
    "Task",
    "data_identity",
    "make_task",
    "problem_fingerprint",
    "task_names",
]
