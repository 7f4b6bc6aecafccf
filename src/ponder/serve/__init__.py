"""``ponder serve``: test-time scaling behind an OpenAI-compatible API (the ``serve``
extra: FastAPI and uvicorn)."""

from ponder.serve.app import ServeSettings, create_app
from ponder.serve.chat import ChatTask
from ponder.serve.selection import Limits, select, split_model

__all__ = ["ChatTask", "Limits", "ServeSettings", "create_app", "select", "split_model"]
