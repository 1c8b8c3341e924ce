from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
AUSTEN = SHARED / "data" / "austen"


@pytest.fixture(scope="session")
def austen_text() -> str:
    path = AUSTEN / "persuasion.txt"
    if not path.exists():
        pytest.skip("../shared/data/austen is not present")
    return path.read_text(encoding="utf-8")


@pytest.fixture()
def small_corpus(tmp_path: Path, austen_text: str) -> Path:
    """A two-file corpus of real prose (~70k characters)."""
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "a.txt").write_text(austen_text[:40000], encoding="utf-8")
    (d / "b.txt").write_text(austen_text[100000:130000], encoding="utf-8")
    return d
