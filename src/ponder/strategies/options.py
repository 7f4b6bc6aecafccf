"""A strategy's options from text and from the flags a caller collected: what
``ponder run``, ``ponder eval`` and ``ponder serve`` pass to ``make_strategy``.

``parse_options`` reads ``KEY=VALUE`` items (the CLI's ``-o``) as the strategy's fields,
each value as its field's type; ``build_options`` adds them to the common options (``n``,
``temperature``, ...), gives a strategy that takes one its ``NAME:ARG`` argument
(``STRATEGY_ARGUMENTS``), and lets ``n`` bound an adaptive strategy's ``max_n``. Its
messages name ``-o``, the flag the items come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from ponder.core.errors import ConfigError
from ponder.strategies.base import sample_count_field, strategy_class

__all__ = ["STRATEGY_ARGUMENTS", "build_options", "parse_options"]

# strategies that take an argument after a colon, and the option it sets
STRATEGY_ARGUMENTS = {"optimal": "policy"}


def build_options(
    strategy: str,
    common: Mapping[str, Any],
    *,
    argument: str | None = None,
    items: Sequence[str] = (),
) -> dict[str, Any]:
    """The options of ``strategy``: ``common`` (None values leave the strategy's
    default), ``argument`` as the option ``STRATEGY_ARGUMENTS`` names for it, and the
    ``KEY=VALUE`` ``items``, which override both. An adaptive strategy, which draws at
    most ``max_n`` samples, gets ``common``'s ``n`` as its ``max_n``."""
    options = dict(common)
    if argument is not None:
        options[STRATEGY_ARGUMENTS[strategy]] = argument
    if sample_count_field(strategy) == "max_n" and "n" in options:
        options["max_n"] = options.pop("n")
    options.update(parse_options(strategy, items))
    return options


def parse_options(strategy: str, items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as the strategy's fields, each value read as its field's type
    (bool, int, float; text otherwise); a dash in a key reads as an underscore."""
    known = {f.name: f for f in fields(strategy_class(strategy))}
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise ConfigError(f"-o {item!r}: strategy {strategy!r} has fields {', '.join(known)}")
        default = known[key].default
        value: Any = raw
        try:
            if isinstance(default, bool):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                value = raw.lower() in ("true", "1", "yes")
            elif isinstance(default, int):
                value = int(raw)
            elif isinstance(default, float):
                value = float(raw)
            elif default is None and "float" in str(known[key].type):
                value = float(raw)  # an optional number: ``temperature: float | None``
            elif default is None and raw.lstrip("-").isdigit():
                value = int(raw)
        except ValueError:
            raise ConfigError(f"-o {item!r}: {key} takes a {type(default).__name__}") from None
        options[key] = value
    return options
