"""Word tokens and hashed n-grams over a whole corpus at once (numpy, no Python loops per n-gram).

Documents are tokenised into lower-cased words and punctuation, every token gets a random
64-bit code from a seeded table, and the n-grams of all documents are hashed together with a
polynomial over the codes (wrapping uint64 arithmetic). Windows that would cross a document
boundary are dropped. Collisions among 64-bit hashes are negligible at corpus sizes we meet
(birthday bound ~ 1e-9 at 10^5 distinct n-grams).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import regex

WORD_RE = regex.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_PRIME = np.uint64(0x100000001B3)


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of ``text``."""
    return WORD_RE.findall(text.lower())


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = (x + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Vocabulary:
    """Maps word strings to ids shared by every corpus of one audit, and ids to 64-bit codes."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def ids(self, tokens: Sequence[str]) -> np.ndarray:
        index = self.index
        out = np.empty(len(tokens), dtype=np.int64)
        for i, t in enumerate(tokens):
            j = index.get(t)
            if j is None:
                j = index[t] = len(index)
            out[i] = j
        return out

    def codes(self, ids: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return _splitmix64(ids.astype(np.uint64))


@dataclass
class TokenizedCorpus:
    """All documents' token ids concatenated, with per-document offsets."""

    ids: np.ndarray  # int64, all tokens
    offsets: np.ndarray  # int64, len(docs) + 1
    codes: np.ndarray  # uint64 code per token

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc_of_position(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_docs), self.lengths())

    def subset(self, docs: np.ndarray) -> TokenizedCorpus:
        """The corpus of documents ``docs`` (indices, in that order), without re-tokenising."""
        starts, ends = self.offsets[docs], self.offsets[docs + 1]
        lengths = ends - starts
        pos = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)]) \
            if len(docs) else np.zeros(0, np.int64)
        return TokenizedCorpus(ids=self.ids[pos],
                               offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                               codes=self.codes[pos])

    def ngram_hashes(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of every n-gram that lies inside one document, and that document's index."""
        total = len(self.ids)
        if total < n:
            return np.zeros(0, np.uint64), np.zeros(0, np.int64)
        m = total - n + 1
        h = np.zeros(m, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(n):
                h = h * _PRIME + self.codes[k:k + m]
        pos_doc = self.doc_of_position()
        doc = pos_doc[:m]
        keep = doc == pos_doc[n - 1:]
        return h[keep], doc[keep]


def tokenize(texts: Sequence[str], vocab: Vocabulary) -> TokenizedCorpus:
    """Tokenise ``texts`` into one :class:`TokenizedCorpus` (ids from the shared ``vocab``)."""
    pieces = [vocab.ids(words(t)) for t in texts]
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
    return TokenizedCorpus(ids=ids, offsets=offsets, codes=vocab.codes(ids))


def distinct_n(corpus: TokenizedCorpus, n: int) -> float:
    """Distinct-n: unique n-grams / all n-grams, in [0, 1] (Li et al. 2016)."""
    h, _ = corpus.ngram_hashes(n)
    return float(len(np.unique(h)) / len(h)) if len(h) else 0.0


def unigram_entropy(corpus: TokenizedCorpus) -> float:
    """Shannon entropy of the word distribution, in bits."""
    if not len(corpus.ids):
        return 0.0
    counts = np.bincount(corpus.ids)
    p = counts[counts > 0] / len(corpus.ids)
    return float(-(p * np.log2(p)).sum())


def ngram_distribution(corpus: TokenizedCorpus, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique n-gram hashes and their counts."""
    h, _ = corpus.ngram_hashes(n)
    return np.unique(h, return_counts=True)


def jensen_shannon(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between two n-gram count tables."""
    keys = np.union1d(a[0], b[0])
    pa = np.zeros(len(keys))
    pb = np.zeros(len(keys))
    pa[np.searchsorted(keys, a[0])] = a[1]
    pb[np.searchsorted(keys, b[0])] = b[1]
    if pa.sum() == 0 or pb.sum() == 0:
        return 1.0
    pa /= pa.sum()
    pb /= pb.sum()
    m = (pa + pb) / 2

    def kl(p: np.ndarray) -> float:
        nz = p > 0
        return float((p[nz] * np.log2(p[nz] / m[nz])).sum())

    return float(min(1.0, max(0.0, (kl(pa) + kl(pb)) / 2)))


def docs_with_hits(corpus: TokenizedCorpus, n: int, reference: np.ndarray) -> np.ndarray:
    """Boolean per document: does it contain any n-gram whose hash is in ``reference``
    (a sorted unique hash array)?"""
    h, doc = corpus.ngram_hashes(n)
    hit = np.zeros(corpus.n_docs, dtype=bool)
    if len(h) and len(reference):
        pos = np.clip(np.searchsorted(reference, h), 0, len(reference) - 1)
        found = reference[pos] == h
        hit[np.unique(doc[found])] = True
    return hit


def rare_ngram_recall(reference: TokenizedCorpus, other: TokenizedCorpus, n: int = 2,
                      max_count: int = 2) -> tuple[float, int]:
    """Share of the reference's rare n-grams (count 1..``max_count``) that ``other`` contains.

    Returns (recall in [0, 1], number of rare reference n-grams).
    """
    keys, counts = ngram_distribution(reference, n)
    rare = keys[counts <= max_count]
    if not len(rare):
        return 0.0, 0
    present = np.unique(other.ngram_hashes(n)[0])
    return float(np.isin(rare, present, assume_unique=True).mean()), int(len(rare))


def self_bleu(corpus: TokenizedCorpus, sample: np.ndarray, max_n: int = 4) -> float:
    """Self-BLEU: mean BLEU-``max_n`` of each sampled document against the other sampled
    documents as references (Zhu et al. 2018), in [0, 1]; higher = less diverse.

    Clipped n-gram precision uses the maximum count in any single other document; brevity
    penalty uses the closest reference length; zero precisions are smoothed with 0.1 counts
    (Chen & Cherry 2014, method 1).
    """
    if len(sample) < 2:
        return 0.0
    lengths = corpus.lengths()[sample]
    per_n = []
    for n in range(1, max_n + 1):
        h, doc = corpus.ngram_hashes(n)
        sel = np.isin(doc, sample)
        h, doc = h[sel], doc[sel]
        # counts per (doc, ngram)
        pair = np.stack([doc.astype(np.uint64), h])
        uniq, cnt = np.unique(pair, axis=1, return_counts=True)
        d_u, h_u = uniq[0].astype(np.int64), uniq[1]
        # top-2 counts per n-gram across documents (to exclude the hypothesis itself)
        order = np.lexsort((-cnt, h_u))
        h_s, c_s, d_s = h_u[order], cnt[order], d_u[order]
        first = np.r_[True, h_s[1:] != h_s[:-1]]
        grp = np.cumsum(first) - 1
        top1 = c_s[first]
        top1_doc = d_s[first]
        second_mask = np.r_[False, ~first[1:]] & np.r_[False, first[:-1]]
        top2 = np.zeros(len(top1), dtype=cnt.dtype)
        top2[grp[second_mask]] = c_s[second_mask]
        # for each (doc, ngram) the max count among other docs
        g_of_pair = np.empty(len(h_u), dtype=np.int64)
        g_of_pair[order] = grp
        other_max = np.where(top1_doc[g_of_pair] == d_u, top2[g_of_pair], top1[g_of_pair])
        clipped = np.minimum(cnt, other_max)
        num = np.bincount(d_u, weights=clipped, minlength=corpus.n_docs)[sample]
        den = np.bincount(d_u, weights=cnt, minlength=corpus.n_docs)[sample]
        p = np.where(num > 0, num, 0.1) / np.maximum(den, 1)
        p = np.where(den > 0, p, 1e-9)
        per_n.append(np.log(p))
    log_p = np.mean(per_n, axis=0)
    # brevity penalty against the closest other length
    diffs = np.abs(lengths[:, None] - lengths[None, :]).astype(float)
    np.fill_diagonal(diffs, np.inf)
    closest = lengths[np.argmin(diffs, axis=1)]
    bp = np.where(lengths >= closest, 1.0, np.exp(1 - closest / np.maximum(lengths, 1)))
    return float(np.mean(bp * np.exp(log_p)))
