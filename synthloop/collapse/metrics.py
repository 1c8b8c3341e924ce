"""Per-generation text metrics of the collapse lab (pure functions over lists of texts).

Words are maximal runs of letters (with inner apostrophes), lower-cased, so the metrics do not
depend on any model's tokenizer and compare across backends.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")

#: Real-train frequency bands for tail recall (inclusive bounds; None = no upper bound).
BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("1-2", 1, 2), ("3-10", 3, 10), ("11-49", 11, 49), ("50+", 50, None))


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``."""
    return [w.lower() for w in _WORD.findall(text)]


def word_lists(texts: Iterable[str]) -> list[list[str]]:
    return [words(t) for t in texts]


def word_counts(texts: Iterable[str]) -> Counter:
    c: Counter = Counter()
    for t in texts:
        c.update(words(t))
    return c


def unigram_entropy(counts: Mapping[str, int]) -> float:
    """Shannon entropy of the word distribution, in bits (0 for no words)."""
    total = sum(counts.values())
    if total == 0:
        return 0.0
    p = np.fromiter(counts.values(), dtype=np.float64) / total
    return float(-(p * np.log2(p)).sum())


def distinct_n(docs: Sequence[Sequence[str]], n: int) -> float:
    """Distinct-n: unique word n-grams over all n-grams (within records), in [0, 1]."""
    grams: set = set()
    total = 0
    for w in docs:
        for i in range(len(w) - n + 1):
            grams.add(tuple(w[i:i + n]))
            total += 1
    return len(grams) / total if total else 0.0


def band_words(real_counts: Mapping[str, int], lo: int, hi: int | None) -> set[str]:
    return {w for w, c in real_counts.items() if c >= lo and (hi is None or c <= hi)}


def tail_recall(real_counts: Mapping[str, int], generated_vocab: set[str],
                band: tuple[int, int | None]) -> float:
    """Share of real-train words with frequency in ``band`` that occur in generated data."""
    target = band_words(real_counts, *band)
    if not target:
        return float("nan")
    return len(target & generated_vocab) / len(target)


def text_metrics(texts: Sequence[str], real_counts: Mapping[str, int],
                 tail_band: tuple[int, int | None] = (3, 10)) -> dict:
    """Diversity and tail metrics of a set of texts against the real training data.

    Returns: ``entropy`` (bits), ``distinct_1``, ``distinct_2``, ``vocab_size`` (word types),
    ``tail_retention`` (recall of real words whose train frequency is in ``tail_band``),
    ``tail_recall_by_band`` (same for each band of :data:`BANDS`), ``novel_word_fraction``
    (share of word occurrences never seen in real train data), ``words_per_record``.
    """
    docs = word_lists(texts)
    counts: Counter = Counter()
    for d in docs:
        counts.update(d)
    vocab = set(counts)
    total = sum(counts.values())
    novel = sum(c for w, c in counts.items() if w not in real_counts)
    return {
        "entropy": unigram_entropy(counts),
        "distinct_1": distinct_n(docs, 1),
        "distinct_2": distinct_n(docs, 2),
        "vocab_size": len(vocab),
        "tail_retention": tail_recall(real_counts, vocab, tail_band),
        "tail_recall_by_band": {name: tail_recall(real_counts, vocab, (lo, hi))
                                for name, lo, hi in BANDS},
        "novel_word_fraction": novel / total if total else 0.0,
        "words_per_record": total / len(texts) if texts else 0.0,
    }


def ppl_summary(ppl: np.ndarray, bin_edges: np.ndarray) -> dict:
    """Mean, quantiles and a histogram (counts over ``bin_edges``) of per-sample perplexity."""
    ppl = np.asarray(ppl, dtype=np.float64)
    ppl = ppl[np.isfinite(ppl)]
    if ppl.size == 0:
        return {"mean": float("nan"), "p5": float("nan"), "p50": float("nan"),
                "p95": float("nan"), "hist": [0] * (len(bin_edges) - 1)}
    clipped = np.clip(ppl, bin_edges[0], bin_edges[-1])
    hist, _ = np.histogram(clipped, bins=bin_edges)
    q = np.quantile(ppl, [0.05, 0.5, 0.95])
    return {"mean": float(ppl.mean()), "p5": float(q[0]), "p50": float(q[1]),
            "p95": float(q[2]), "hist": hist.astype(int).tolist()}


def log_bins(lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` log-spaced histogram bins between ``lo`` and ``hi`` (n + 1 edges)."""
    return np.exp(np.linspace(math.log(lo), math.log(hi), n + 1))


def summarise(runs: list[dict], metric: str = "test_ppl") -> list[dict]:
    """Per policy: the metric at generation 0 and at the last generation (mean and spread
    over seeds), and the tail retention at both (for runs on text)."""
    out = []
    for policy in dict.fromkeys(r["policy"] for r in runs):
        rows = [r for r in runs if r["policy"] == policy]
        last = max(r["generation"] for r in rows)

        def at(g: int, key: str, rows=rows) -> np.ndarray:
            return np.array([r[key] for r in rows if r["generation"] == g], dtype=float)

        first_v, last_v = at(0, metric), at(last, metric)
        out.append({
            "policy": policy, "last_generation": last, "seeds": len(last_v),
            f"{metric}_gen0": float(first_v.mean()), f"{metric}_last": float(last_v.mean()),
            f"{metric}_change": float(last_v.mean() - first_v.mean()),
            f"{metric}_spread": float(_spread(first_v) + _spread(last_v)),
        })
        if all("tail_retention" in r for r in rows):
            out[-1]["tail_retention_gen0"] = float(at(0, "tail_retention").mean())
            out[-1]["tail_retention_last"] = float(at(last, "tail_retention").mean())
    return out


def _spread(v: np.ndarray) -> float:
    return float(v.max() - v.min()) if v.size > 1 else 0.0


def audit_predicts_collapse(runs: list[dict], *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Does the audit of the data a model trained on predict what training on it did?

    Over every row with an ``audit`` (generation ≥ 1, every policy and seed): Spearman ρ
    between the audit score of the training mix (overall, and per property) and the model's
    held-out real perplexity *improvement* over generation 0 of its seed (``test_ppl_gen0 −
    test_ppl``; so ρ > 0 means a higher audit score goes with a better model), with a
    percentile bootstrap 95% CI over rows (``n_boot`` resamples, seeded).

    Returns ``{"rows", "overall": {"rho", "low", "high"}, "properties": {name: {...}}}``, or
    ``{"rows": n}`` alone with fewer than 4 audited rows.
    """
    from scipy.stats import spearmanr

    gen0 = {r["seed"]: r["test_ppl"] for r in runs if r["generation"] == 0}
    rows = [r for r in runs if r.get("audit") and r["generation"] > 0 and r["seed"] in gen0]
    out: dict = {"rows": len(rows)}
    if len(rows) < 4:
        return out
    y = np.array([gen0[r["seed"]] - r["test_ppl"] for r in rows])
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, len(rows), len(rows)) for _ in range(n_boot)]

    def rho(x: np.ndarray) -> dict:
        ok = np.isfinite(x)
        if ok.sum() < 4 or np.ptp(x[ok]) == 0:
            return {"rho": None, "low": None, "high": None}
        est = float(spearmanr(x[ok], y[ok]).statistic)
        vals = []
        for b in boots:
            xb, yb = x[b], y[b]
            keep = np.isfinite(xb)
            if np.ptp(xb[keep]) > 0 and np.ptp(yb[keep]) > 0:
                vals.append(spearmanr(xb[keep], yb[keep]).statistic)
        lo, hi = np.percentile(vals, [2.5, 97.5]) if vals else (np.nan, np.nan)
        return {"rho": est, "low": float(lo), "high": float(hi)}

    def prop(r: dict, p: str) -> float:
        v = r["audit"]["properties"].get(p)
        return np.nan if v is None else float(v)

    out["overall"] = rho(np.array([r["audit"]["score"] for r in rows], dtype=float))
    props = sorted({p for r in rows for p in r["audit"]["properties"]})
    out["properties"] = {p: rho(np.array([prop(r, p) for r in rows])) for p in props}
    # privacy and contamination measure risk to the real data's people and to benchmarks,
    # not what the data is worth to train on: real records in a mix are "copies" of the real
    # reference by construction, so they are left out of the training-value score
    value = [p for p in props if p not in TRAINING_VALUE_EXCLUDES]
    out["training_value"] = {"properties": value, **rho(np.array(
        [np.nanmean([prop(r, p) for p in value]) for r in rows]))}
    return out


#: Properties left out of the training-value score (see :func:`audit_predicts_collapse`).
TRAINING_VALUE_EXCLUDES = ("privacy", "contamination", "provenance")
