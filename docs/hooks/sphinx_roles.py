"""A griffe extension for the API reference: ponder's docstrings write cross-references
the Sphinx way (:class:`EngineError`, :func:`engine`); shown as Markdown they would keep
the role's colons, so each becomes a code span (``EngineError``)."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(r"``\1``", obj.docstring.value)
