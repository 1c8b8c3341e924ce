from __future__ import annotations

import json
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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained from-scratch GPT saved as a model folder (fast to sample from)."""
    from synthloop.models.lm import TinyLM
    from synthloop.models.tokenizer import BPETokenizer

    seeds = Path(__file__).resolve().parents[1] / "examples" / "data" / "austen_seeds.jsonl"
    texts = [json.loads(line)["text"] for line in seeds.read_text().splitlines()]
    path = tmp_path_factory.mktemp("models") / "tiny"
    TinyLM.create(BPETokenizer.train(texts, vocab_size=600), size="tiny", max_len=512,
                  seed=0).save(path)
    return path
