"""Build an engine from what the user typed, importing heavy backends only when needed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.engine import Engine
from ponder.engines.models import CATALOGUE, resolve

if TYPE_CHECKING:
    from ponder.engines.llamacpp import LlamaCppEngine


def uses_server(model: str, base_url: str | None) -> bool:
    """A server is used when ``--base-url`` is given, or when ``OPENAI_BASE_URL`` is set and
    the model is neither a bundled name nor a local file."""
    if base_url:
        return True
    local = model in CATALOGUE or model.endswith(".gguf") or Path(model).is_file()
    return bool(os.environ.get("OPENAI_BASE_URL")) and not local


def make_engine(
    model: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    log: Callable[[str], None] = print,
    **options: Any,
) -> Engine:
    """``model`` is a bundled name, a .gguf path (embedded engine) or a server's model name.

    ``base_url`` may list several servers of the model, separated by commas: they form
    an ``EnginePool`` (least outstanding requests, health checks, failover).

    ``options`` go to the engine's constructor (for example ``n_parallel`` and ``n_ctx``
    for the embedded engine, ``max_concurrency`` for a server); unset ones (None) are
    dropped so each engine keeps its own defaults.
    """
    opts = {k: v for k, v in options.items() if v is not None}
    if uses_server(model, base_url):
        from ponder.engines.openai import OpenAIEngine

        server_opts = {
            k: v for k, v in opts.items() if k in ("max_concurrency", "timeout", "chat_template")
        }
        urls = [u.strip() for u in (base_url or "").split(",") if u.strip()]
        if len(urls) > 1:
            from ponder.engines.pool import EnginePool

            # one quick retry per member: the pool fails over to another server instead
            members = [
                OpenAIEngine(model, base_url=u, api_key=api_key, max_retries=1, **server_opts)
                for u in urls
            ]
            return EnginePool(members)
        return OpenAIEngine(model, base_url=base_url, api_key=api_key, **server_opts)
    from ponder.engines.llamacpp import LlamaCppEngine

    path = resolve(model, log=log)
    local_opts = {
        k: v for k, v in opts.items() if k in ("n_parallel", "n_ctx", "n_threads", "prefix_reuse")
    }
    return LlamaCppEngine(str(path), **local_opts)


def tokenizer_engine(model: str) -> LlamaCppEngine:
    """An embedded engine of ``model`` (a bundled name or a .gguf file) loaded for its
    vocabulary alone (``count_tokens``): one sequence of a 256-token context, as no text
    is generated. Close it with ``aclose``."""
    from ponder.engines.llamacpp import LlamaCppEngine

    return LlamaCppEngine(str(resolve(model)), n_parallel=1, n_ctx=256)
