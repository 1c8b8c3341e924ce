"""MinHash signatures and LSH banding over a whole corpus at once (Broder 1997).

Signatures are computed for all documents in one pass per permutation with
``np.minimum.reduceat`` over the corpus' shingle hashes, which is what makes this faster than
building one ``datasketch.MinHash`` per document (see benchmarks/bench_audit_text.py).
"""

from __future__ import annotations

import numpy as np

from synthloop.measures.ngrams import TokenizedCorpus

EMPTY = np.iinfo(np.uint64).max


def signatures(corpus: TokenizedCorpus, *, shingle: int = 5, num_perm: int = 128,
               seed: int = 1) -> np.ndarray:
    """MinHash signature matrix (docs × ``num_perm``, uint64) over word ``shingle``-grams.

    Documents shorter than ``shingle`` words use their whole token sequence as one shingle, so
    short exact duplicates still collide; empty documents get the all-max signature.
    """
    n = corpus.n_docs
    h, doc = corpus.ngram_hashes(shingle)
    lengths = corpus.lengths()
    short = np.flatnonzero((lengths < shingle) & (lengths > 0))
    if len(short):
        # one shingle per short document: the polynomial hash of all its tokens
        extra = np.zeros(len(short), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j, d in enumerate(short):
                v = np.uint64(0)
                for c in corpus.codes[corpus.offsets[d]:corpus.offsets[d + 1]]:
                    v = v * np.uint64(0x100000001B3) + c
                extra[j] = v
        h = np.concatenate([h, extra])
        doc = np.concatenate([doc, short])
        order = np.argsort(doc, kind="stable")
        h, doc = h[order], doc[order]
    sig = np.full((n, num_perm), EMPTY, dtype=np.uint64)
    if not len(h):
        return sig
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
    present = doc[starts]
    with np.errstate(over="ignore"):
        for i in range(num_perm):
            v = h * a[i] + b[i]
            v ^= v >> np.uint64(29)
            sig[present, i] = np.minimum.reduceat(v, starts)
    return sig


def _band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    rows = sig.shape[1] // bands
    keys = np.zeros((sig.shape[0], bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            k = np.zeros(sig.shape[0], dtype=np.uint64)
            for r in range(band * rows, (band + 1) * rows):
                k = k * np.uint64(0x100000001B3) + sig[:, r]
            keys[:, band] = k
    return keys


def near_duplicate_mask(sig: np.ndarray, reference: np.ndarray | None = None, *,
                        threshold: float = 0.8, bands: int = 16) -> np.ndarray:
    """Boolean per row of ``sig``: has it a near-duplicate (estimated Jaccard ≥ ``threshold``)?

    With ``reference`` None, near-duplicates are looked for among the other rows of ``sig``;
    otherwise among the rows of ``reference``. Candidates come from LSH banding (``bands``
    bands of ``num_perm / bands`` rows) and are confirmed on the full signatures.
    """
    n = sig.shape[0]
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    empty = (sig == EMPTY).all(axis=1)
    ref = sig if reference is None else reference
    keys_q = _band_keys(sig, bands)
    keys_r = keys_q if reference is None else _band_keys(ref, bands)
    ref_empty = (ref == EMPTY).all(axis=1)
    for band in range(bands):
        order = np.argsort(keys_r[:, band], kind="stable")
        sorted_keys = keys_r[order, band]
        lo = np.searchsorted(sorted_keys, keys_q[:, band], side="left")
        hi = np.searchsorted(sorted_keys, keys_q[:, band], side="right")
        todo = np.flatnonzero(~out & ~empty & (hi - lo > (1 if reference is None else 0)))
        for q in todo:
            cand = order[lo[q]:hi[q]]
            if reference is None:
                cand = cand[cand != q]
            cand = cand[~ref_empty[cand]]
            if not len(cand):
                continue
            agree = (ref[cand] == sig[q]).mean(axis=1)
            if (agree >= threshold).any():
                out[q] = True
    return out


def earlier_duplicates(sig: np.ndarray, *, threshold: float = 0.8, bands: int = 16,
                       max_candidates: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the first earlier row it near-duplicates (−1 if none) and their
    estimated Jaccard similarity.

    Keeping exactly the rows with −1 keeps the first document of every near-duplicate chain
    (what deduplication wants); candidates come from LSH banding and are confirmed on the full
    signatures; at most ``max_candidates`` earlier rows per bucket are compared.
    """
    n = sig.shape[0]
    first = np.full(n, -1, dtype=np.int64)
    sim = np.zeros(n)
    if n < 2:
        return first, sim
    empty = (sig == EMPTY).all(axis=1)
    keys = _band_keys(sig, bands)
    for band in range(bands):
        order = np.argsort(keys[:, band], kind="stable")  # ties stay in row order
        k = keys[order, band]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts[(ends - starts) > 1], ends[(ends - starts) > 1], strict=True):
            members = order[s:e]
            members = members[~empty[members]]
            for pos in range(1, len(members)):
                q = members[pos]
                if first[q] >= 0:
                    continue
                cand = members[max(0, pos - max_candidates):pos]
                agree = (sig[cand] == sig[q]).mean(axis=1)
                hit = np.flatnonzero(agree >= threshold)
                if len(hit):
                    first[q] = cand[hit[0]]
                    sim[q] = agree[hit[0]]
    # a row that was matched in one band may have an even earlier match in another band;
    # either way it is dropped, and its recorded partner is a kept-or-earlier row
    return first, sim
