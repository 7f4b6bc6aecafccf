"""ARCHITECTURE.md and BENCHMARKS.md, kept at the repository's root, as pages of the site.

An MkDocs hook: each build reads the files as they are, so the site never holds a stale
copy of the figures or of the layer picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# site page -> file at the repository's root
PAGES = {"architecture.md": "ARCHITECTURE.md", "benchmarks.md": "BENCHMARKS.md"}


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    root = Path(config.config_file_path).parent
    for page, source in PAGES.items():
        text = (root / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=text))
    return files
