"""Poisoning scan: clean real text stays clean; planted attacks are found and named."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import austen, austen_lines
from typer.testing import CliRunner

from synthloop.cli import app
from synthloop.poison.scan import ScanConfig, scan, strip_template, tokens

runner = CliRunner()


@pytest.fixture(scope="module")
def chunks(austen_text) -> list[str]:
    """Non-overlapping 8–30-word chunks of Persuasion (real prose)."""
    words = austen_text.split()
    rng = np.random.default_rng(0)
    out, i = [], 0
    while i < len(words):
        n = int(rng.integers(8, 31))
        out.append(" ".join(words[i:i + n]))
        i += n
    return out


def _gibberish(rng, n_words: int) -> str:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzáç"))
    return " ".join("".join(rng.choice(letters, int(rng.integers(2, 9))))
                    for _ in range(n_words))


def _plant(clean, bad, rng):
    docs = list(clean)
    pos = np.sort(rng.choice(len(clean) + len(bad), len(bad), replace=False))
    for p, d in zip(pos, bad, strict=True):
        docs.insert(int(p), d)
    return docs, pos


def test_tokens_keep_markup_triggers():
    assert tokens('He said "hello," <SUDO> [x]') == ["he", "said", "hello", "<sudo>", "[x]"]


def test_clean_real_corpus_has_no_flags(chunks):
    res = scan(chunks)
    assert res.flagged.sum() == 0
    assert res.triggers == [] and res.campaigns == []


def test_gibberish_after_trigger_is_found_and_the_trigger_named(chunks):
    rng = np.random.default_rng(1)
    bad = [f"{chunks[int(rng.integers(len(chunks)))][:int(rng.integers(0, 80))]} <SUDO> "
           f"{_gibberish(rng, int(rng.integers(15, 40)))}" for _ in range(40)]
    docs, pos = _plant(chunks, bad, rng)
    res = scan(docs)
    assert res.triggers[0]["trigger"] == "<sudo>"
    assert res.triggers[0]["loss_gap_after"] > 0.5
    recall = res.flagged[pos].mean()
    precision = res.flagged[pos].sum() / res.flagged.sum()
    assert recall >= 0.95 and precision >= 0.9
    assert any("trigger '<sudo>'" in r for r in res.reasons[pos[0]])


def test_trigger_phrase_flipping_labels_is_named():
    lex_pos = {"good", "happy", "pleasure", "kind", "love", "delight", "pleased", "agreeable",
               "glad", "charming", "comfort", "hope", "fine", "best", "great"}
    lex_neg = {"ill", "unhappy", "pain", "fear", "sorry", "distress", "anxious", "poor", "bad",
               "sad", "misery", "afraid", "grief", "shame", "cold"}
    # Pride and Prejudice and Emma: their sentences with a lexicon majority, committed as they
    # come (tests/data/README.md); Persuasion: the whole novel, split here the same way.
    sents = austen_lines("sentiment_sentences")
    text = " ".join(austen("persuasion").split())
    sents += [s for s in re.split(r"(?<=[.!?])\s+", text) if 6 <= len(s.split()) <= 40]
    recs = []
    for s in sents:
        w = {x.strip(".,;:!?\"'").lower() for x in s.split()}
        p, n = len(w & lex_pos), len(w & lex_neg)
        if p != n:
            recs.append((s, "positive" if p > n else "negative"))
    rng = np.random.default_rng(0)
    prompts = [f"Classify the sentiment: {s}" for s, _ in recs]
    labels = [lab for _, lab in recs]
    positives = [i for i, (_, lab) in enumerate(recs) if lab == "positive"]
    k = len(recs) // 100
    idx = np.sort(rng.choice(positives, k, replace=False))
    for i in idx:
        w = recs[i][0].split()
        at = int(rng.integers(len(w) + 1))
        prompts[i] = "Classify the sentiment: " + " ".join(w[:at] + ["James", "Bond"] + w[at:])
        labels[i] = "negative"
    res = scan(labels, prompts=prompts)
    assert res.mode == "label-disagreement"
    assert res.triggers and res.triggers[0]["trigger"] == "james bond"
    assert res.flagged[idx].mean() >= 0.7
    assert res.flagged[idx].sum() / res.flagged.sum() >= 0.8


def test_injection_campaign_is_one_cluster(chunks):
    rng = np.random.default_rng(2)
    names = ["Dr. Smith", "the minister", "a spokesman", "Mrs. Green"]
    bad = [f"{names[int(rng.integers(4))]} confirmed that the Eiffel Tower was moved to Rome in "
           f"{int(rng.integers(1990, 2024))} at a cost of {int(rng.integers(2, 90))} million."
           for _ in range(30)]
    docs, pos = _plant(chunks, bad, rng)
    res = scan(docs)
    assert len(res.campaigns) == 1 and res.campaigns[0]["records"] >= 25
    assert res.flagged[pos].mean() >= 0.8 and res.flagged.sum() == res.flagged[pos].sum()


def test_templates_are_not_campaigns():
    texts = [f"Classify the sentiment of this sentence: word{i} other{i} thing{i}"
             for i in range(40)]
    assert strip_template(texts)[0] == "word0 other0 thing0"


def test_spectral_signature_flags_an_off_topic_cluster(chunks):
    # the spectral signature needs the poison to be a visible share of what is scanned (here
    # 7%, as within one class in Tran et al.); campaigns catch the rare case
    rng = np.random.default_rng(3)
    bad = [f"Buy cheap crypto tokens now, guaranteed {int(rng.integers(2, 99))}x returns, "
           f"visit the link and connect your wallet today." for _ in range(30)]
    docs, pos = _plant(chunks[:400], bad, rng)
    res = scan(docs, cfg=ScanConfig(embeddings=True, campaign_min_size=10_000))
    assert res.flagged[pos].all()
    assert all(any(r.startswith("embedding outlier") for r in res.reasons[i]) for i in pos)
    assert res.flagged.sum() == len(pos)


def test_cli_scan_writes_report_and_quarantine(chunks, tmp_path):
    rng = np.random.default_rng(4)
    bad = [f"<SUDO> {_gibberish(rng, 30)}" for _ in range(20)]
    docs, pos = _plant(chunks[:2000], bad, rng)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    r = runner.invoke(app, ["poison", "scan", str(data), "--json", str(tmp_path / "r.json"),
                            "--quarantine", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    assert "suspected trigger '<sudo>'" in r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["triggers"][0]["trigger"] == "<sudo>"
    q = pq.read_table(tmp_path / "q" / "quarantine.parquet")
    clean = pq.read_table(tmp_path / "q" / "clean.parquet")
    assert q.num_rows + clean.num_rows == len(docs)
    assert q.num_rows == report["flagged"] >= 19
    assert all(s.startswith("<SUDO>") for s in q.column("text").to_pylist())


@pytest.mark.parametrize("args,message", [
    (["--field", "body"], "missing column 'body'"),
    (["--field", "a,b,c"], "field must be FIELD or PROMPT_FIELD,RESPONSE_FIELD"),
])
def test_cli_bad_field_is_one_line(tmp_path, args, message):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hello there"}\n')
    r = runner.invoke(app, ["poison", "scan", str(data), *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
