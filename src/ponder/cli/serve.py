"""``ponder serve``: the OpenAI-compatible server (``ponder.serve``) on an engine."""

from __future__ import annotations

import argparse
from typing import Any

from ponder.cli import args as cli_args
from ponder.cli.args import add_engine_args, add_exec_arg
from ponder.core.errors import MissingExtra

__all__ = ["COMMANDS", "add_parser", "run_serve"]

EPILOG = """choosing the strategy per request:
  model name prefix      majority-8/MODEL, best_of_n-4/MODEL, adaptive/MODEL
  extra_body             {"ponder": {"strategy": "majority", "n": 8, "budget": 4000,
                          "candidates": true, "trace": true}}
  otherwise              --strategy and -o KEY=VALUE below
reasoning models: votes read the answer after </think>; the reply's
  message.reasoning_content holds the chosen sample's thinking; cap the thinking with
  {"ponder": {"strategy": "budget_forcing", "max_thinking_tokens": 256}}
free-form requests: a voting strategy's samples without checkable answers (a number,
  boxed, a choice, code) are selected by meaning (--freeform auto, the default):
  USC by default, or --freeform-method semantic --freeform-cluster text|embed|judge;
  per request {"ponder": {"freeform": "answers"|"meaning"|{"mode": ..., ...}}}
tracing: --trace DIR writes each request's inner calls (prompt, output, tokens,
  seconds) and the decision to DIR/<reply id>.jsonl; "trace": true returns them in
  the reply's ponder.trace
The reply's usage counts every token the strategy spent; its `ponder` field has the
votes, ponder's own token accounting and, on request, the candidates. A failed,
timed-out or over-budget request's error has what it spent in `ponder.usage`, and
GET /v1/ponder/usage returns the running total of the key it is called with
(kept in memory: a restart resets it).

example:
  ponder serve --model qwen2.5-coder-1.5b --port 8000 --strategy majority -o n=4
  curl localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model": "majority-8/qwen2.5-coder-1.5b",
           "messages": [{"role": "user", "content": "What is 17*23?"}]}'
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        help="an OpenAI-compatible server that applies a strategy per request",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--served-model-name", help="the model name clients use (default: --model's name)"
    )
    p.add_argument("--strategy", default="single", help="default strategy (single)")
    p.add_argument(
        "-o", dest="option", action="append", default=[], metavar="KEY=VALUE",
        help="a field of the default strategy, as in `ponder eval -o`; repeatable",
    )  # fmt: skip
    p.add_argument("--max-n", type=int, default=32, help="most samples a request may ask (32)")
    p.add_argument("--max-budget", type=int, help="largest token budget a request may ask")
    p.add_argument("--max-tokens", type=int, default=2048, help="most tokens per sample (2048)")
    p.add_argument(
        "--default-max-tokens", type=int, default=512, help="tokens per sample when unset (512)"
    )
    p.add_argument("--concurrency", type=int, default=4, help="requests run at once (4)")
    p.add_argument("--queue", type=int, default=16, help="requests that may wait (16)")
    p.add_argument("--timeout", type=float, help="seconds a request may take (default: none)")
    p.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="on shutdown, seconds in-flight requests may take to finish before they are "
        "cancelled (default 30)",
    )
    p.add_argument(
        "--api-key", dest="serve_keys", action="append", default=[],
        help="a key clients must send as a bearer token; repeatable",
    )  # fmt: skip
    p.add_argument("--api-key-file", help="a file of client keys, one per line")
    p.add_argument(
        "--freeform", choices=("auto", "answers", "meaning"), default="auto",
        help="how a voting strategy's winner is chosen: by the samples (auto: the answers' "
        "vote when they carry checkable answers, else by meaning), always by the answers, "
        "or always by meaning (default auto)",
    )  # fmt: skip
    p.add_argument(
        "--freeform-method", choices=("usc", "semantic"), default="usc",
        help="selection by meaning: universal self-consistency or semantic clusters (usc)",
    )  # fmt: skip
    p.add_argument(
        "--freeform-cluster", choices=("text", "embed", "judge"), default="text",
        help="semantic clusters by normalised text, sentence embeddings or the model as "
        "judge (text)",
    )  # fmt: skip
    p.add_argument(
        "--trace", metavar="DIR",
        help="write every request's trace (its inner calls and the decision) to "
        "DIR/<reply id>.jsonl",
    )  # fmt: skip
    add_engine_args(p, key_flag="--upstream-api-key")
    add_exec_arg(p)


def run_serve(args: argparse.Namespace) -> int:
    """Check the settings, then load the engine and serve."""
    from ponder.serve import Limits, ServeSettings, create_app, select
    from ponder.serve.accounts import read_api_keys
    from ponder.serve.app import served_name
    from ponder.serve.freeform import FreeformPolicy
    from ponder.serve.selection import ALIASES
    from ponder.strategies.options import parse_options
    from ponder.verifiers.equivalence import make_clusterer

    try:
        import uvicorn
    except ImportError as e:
        raise MissingExtra("uvicorn", "serve") from e
    name = args.served_model_name or served_name(args.model)
    limits = Limits(max_n=args.max_n, max_budget=args.max_budget, max_tokens=args.max_tokens)
    strategy = ALIASES.get(args.strategy, args.strategy)
    options = parse_options(strategy, args.option)
    freeform = FreeformPolicy(args.freeform, args.freeform_method, args.freeform_cluster)
    if freeform.method == "semantic" and freeform.cluster == "embed":
        make_clusterer("embed")  # a missing extra or model is an error now, not per request
    # refuse a bad default now
    select(name, {}, limits=limits, default=(strategy, options), freeform=freeform)
    settings = ServeSettings(
        model=name,
        default_strategy=strategy,
        default_options=options,
        limits=limits,
        default_max_tokens=args.default_max_tokens,
        concurrency=args.concurrency,
        queue=args.queue,
        api_keys=read_api_keys(args.serve_keys, args.api_key_file),
        request_timeout=args.timeout,
        trace_dir=args.trace,
        freeform=freeform,
    )
    app = create_app(cli_args.engine(args), settings)
    print(f"ponder serve: {name} on http://{args.host}:{args.port}/v1", flush=True)
    # on SIGINT/SIGTERM uvicorn stops accepting, lets in-flight requests finish for
    # --graceful-timeout seconds, cancels the rest, then the app closes the engine
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    return 0


COMMANDS = {"serve": run_serve}
