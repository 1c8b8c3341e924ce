from __future__ import annotations

import json
import lzma
import os
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the fuzz suite derandomized (the same examples every run, so a red CI is a real,
# reproducible failure); locally each run explores new examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

DATA = Path(__file__).resolve().parent / "data"
# Two of Jane Austen's novels (public domain), committed xz-compressed so that a fresh clone
# has real prose with nothing beside it: Persuasion (1818) and Northanger Abbey (1818).
AUSTEN = DATA / "austen"


def austen(name: str) -> str:
    """The text of one committed fixture: a whole novel (``persuasion``, ``northangerabbey``).

    A missing fixture is an error, never a skip: the suite must test the same on every clone.
    """
    path = AUSTEN / f"{name}.txt.xz"
    if not path.exists():
        raise FileNotFoundError(f"test fixture {path} is missing (it is committed with the repo)")
    return lzma.decompress(path.read_bytes()).decode("utf-8")


def austen_lines(name: str) -> list[str]:
    """A committed one-text-per-line fixture (``sentiment_sentences``) as a list of lines."""
    return austen(name).splitlines()


@pytest.fixture(scope="session")
def austen_text() -> str:
    return austen("persuasion")


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


# Skips are allowed only for optional system tools; each group gets one line saying what is not
# tested and how to enable it (tests skip with a reason "not tested: ... (enable: ...)").
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    groups: dict[str, int] = defaultdict(int)
    for rep in terminalreporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        groups[reason.removeprefix("Skipped: ")] += 1
    for reason, n in sorted(groups.items()):
        terminalreporter.write_line(f"SKIPPED GROUP ({n} test{'s' * (n != 1)}): {reason}")
