"""The text audit: fidelity, tails, diversity, quality, privacy and contamination of a synthetic
text set, each metric beside the same metric on a real holdout.

Sampling is explicit and reported: set-level statistics (distinct-n, entropy, self-BLEU, Vendi,
rare n-gram recall, embedding distances...) depend on sample size, so they are computed on a
synthetic sample and a holdout sample of the same size ``n_matched`` (seeded). The reference
side (the real training split) is never subsampled. Per-document rates (verbatim overlap,
near-duplicates of real records, PII, contamination) use every synthetic and holdout document.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from synthloop.audit.base import (
    FeatureMemo,
    MetricResult,
    holdout_indices,
    ks_statistic,
    relative_score,
    remembered,
    stage_reporter,
)
from synthloop.configs import Config
from synthloop.errors import ConfigError
from synthloop.measures import embeddings as emb
from synthloop.measures import ngrams as ng
from synthloop.measures.minhash import near_duplicate_mask, signatures
from synthloop.measures.textchecks import GOPHER_RULES, find_pii, quality_flag_rates
from synthloop.progress import Progress


class TextAuditConfig(Config):
    """Parameters of the text audit.

    Attributes:
        seed: seeds the holdout split, the matched samples, k-means and MinHash.
        holdout_fraction: share of the real data split off as holdout when none is given.
        embeddings: compute the MiniLM-based metrics (FD, MMD, PRDC, Vendi, tail clusters).
        ppl_model: reference LM for per-document perplexity (``smollm2-135m``, a folder) or
            None to skip.
        ppl_docs: documents scored per set under the reference LM (seeded sample).
        ppl_max_tokens: tokens scored per document (its first ones).
        self_bleu_docs: documents in the self-BLEU sample.
        verbatim_tokens: length in words of a span that counts as verbatim copying.
        contamination_n: n-gram length for benchmark contamination (13, as in GPT-3).
        benchmark: benchmark texts to check contamination against (None to skip).
        min_words: the Gopher length rule's minimum (paragraph-level data is short).
        near_dup_threshold: estimated Jaccard of word 5-grams that counts as near-duplicate.
        n_clusters: k-means clusters on real embeddings for the tail-cluster metric.
        device: where embeddings and the reference LM run.
    """

    seed: int = 0
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    embeddings: bool = True
    ppl_model: str | None = "smollm2-135m"
    ppl_docs: int = Field(200, ge=1)
    ppl_max_tokens: int = Field(256, ge=2)
    self_bleu_docs: int = Field(100, ge=1)
    verbatim_tokens: int = Field(50, ge=1)
    contamination_n: int = Field(13, ge=1)
    benchmark: list[str] | None = None
    min_words: int = Field(5, ge=0)
    near_dup_threshold: float = Field(0.8, gt=0, le=1)
    n_clusters: int = Field(20, ge=1)
    device: str = "cpu"


@dataclass
class TextAuditData:
    """What the report plots, besides the metrics."""

    lengths: dict[str, list[int]] = field(default_factory=dict)
    perplexities: dict[str, list[float]] = field(default_factory=dict)
    embedding_map: dict[str, list[list[float]]] = field(default_factory=dict)
    flag_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    sampling: dict[str, object] = field(default_factory=dict)




def _sample(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(rng.choice(n_total, size=n, replace=False))


def split_holdout(real: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of ``real`` into (train, holdout)."""
    train, hold = holdout_indices(len(real), fraction, seed)
    return [real[i] for i in train], [real[i] for i in hold]


def _metric(name: str, prop: str, value: float, baseline: float | None, direction: str,
            rng_: tuple[float, float], description: str, *, score: bool = True,
            scale: float | None = None, breakdown: dict | None = None) -> MetricResult:
    s = relative_score(value, baseline, direction, scale) if score else None
    if s is not None and math.isnan(s):
        s = None
    return MetricResult(name=name, prop=prop, value=float(value),
                        baseline=None if baseline is None else float(baseline),
                        direction=direction, range=rng_, score=s, description=description,
                        breakdown=breakdown or {})


def ks_critical(n: int, m: int, alpha: float = 0.01) -> float:
    """The two-sample Kolmogorov-Smirnov distance two samples of sizes ``n`` and ``m`` from one
    distribution exceed with probability ``alpha`` (asymptotic): a length difference smaller
    than this is sampling noise, and warns no one."""
    c = math.sqrt(-0.5 * math.log(alpha / 2))
    return c * math.sqrt((n + m) / (n * m))


def rate_margin(p_holdout: float, p_synthetic: float, n: int, z: float = 2.576) -> float:
    """The difference between two shares measured on ``n`` documents each that sampling noise
    alone stays within 99% of the time (normal approximation at the pooled share)."""
    p = (p_holdout + p_synthetic) / 2
    return z * math.sqrt(max(p * (1 - p), 1e-12) * 2 / n)


def compression_ratio(texts: Sequence[str]) -> float:
    """Size of the concatenated texts over their gzip size (Shaib et al. 2024); ≥ 1, higher
    means more redundant text."""
    raw = "\n".join(texts).encode("utf-8")
    if not raw:
        return 1.0
    return len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0))


def _doc_stats(lm, texts: Sequence[str], max_tokens: int):
    from synthloop.detect.scores import token_stats

    return token_stats(lm, texts, max_tokens=max_tokens)


def _stats_arrays(stats: list) -> dict[str, np.ndarray]:
    """Per-document token statistics as flat arrays (for :class:`FeatureMemo`'s folder)."""
    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(st, name) for st in stats]) if stats else np.zeros(0)

    return {"lengths": np.array([st.n_tokens for st in stats], dtype=np.int64),
            "logp": cat("logp"), "mean": cat("mean"), "var": cat("var")}


def _stats_from_arrays(d: dict[str, np.ndarray]) -> list:
    from synthloop.detect.scores import TokenStats

    ends = np.cumsum(d["lengths"])
    starts = ends - d["lengths"]
    return [TokenStats(d["logp"][a:b], d["mean"][a:b], d["var"][a:b])
            for a, b in zip(starts, ends, strict=True)]


def _ai_share_metric(stats: dict, real_stats: list, model: str,
                     max_tokens: int) -> MetricResult | None:
    """Estimated AI-generated share of the scored synthetic and real-holdout documents
    (Fast-DetectGPT under the reference LM, 1% false positives), with the threshold checked
    against the user's own real documents (:func:`synthloop.detect.domain_share_estimates`):
    off the shipped calibration's domain it is recalibrated on them, or abstains."""
    from synthloop.detect import domain_share_estimates, shipped_calibration
    from synthloop.detect.scores import fast_detectgpt

    if model != "smollm2-135m":
        return None  # the shipped calibration is for the embedded model only
    lengths = [st.n_tokens for v in stats.values() for st in v]
    cal = shipped_calibration("fast-detectgpt", 0.01, int(np.median(lengths)) if lengths
                              else max_tokens)
    scores = {k: [fast_detectgpt(st) for st in v] for k, v in stats.items()}
    est = domain_share_estimates([fast_detectgpt(st) for st in real_stats], scores, cal)
    return MetricResult(
        name="ai_share", prop="provenance", value=est["synthetic"]["share"],
        baseline=est["holdout"]["share"], direction="target", range=(0, 1), score=None,
        description="estimated AI-generated share (Fast-DetectGPT under SmolLM2, 1% false "
                    "positives on human text of the real data's kind; informational) — the "
                    "baseline is the real holdout's own share",
        breakdown={"synthetic": est["synthetic"], "holdout": est["holdout"],
                   "reference": est["reference"], "domain": est["domain"],
                   "calibration": est["calibration"]})


def audit_text(real: Sequence[str], synthetic: Sequence[str],
               holdout: Sequence[str] | None = None, config: TextAuditConfig | None = None,
               progress: Progress | None = None, memo: FeatureMemo | None = None
               ) -> tuple[list[MetricResult], TextAuditData]:
    """Run every text metric on (real, synthetic) and (real, holdout).

    Args:
        real: real documents (the generator's training data, or data like it).
        synthetic: synthetic documents.
        holdout: real documents the generator never saw; split off ``real`` when None.
        config: parameters (defaults: :class:`TextAuditConfig`).
        progress: gets a stage (of unknown length) per group of metrics.
        memo: reuses the real and holdout sides' embeddings and reference-LM statistics
            from earlier audits of the same data (:class:`FeatureMemo`).

    Returns:
        (metrics, data for plots).
    """
    cfg = config or TextAuditConfig()
    say = stage_reporter(progress)
    if holdout is None:
        real, holdout = split_holdout(real, cfg.holdout_fraction, cfg.seed)
        split = f"holdout split off the real data: {len(holdout)} of {len(real) + len(holdout)}"
    else:
        split = "holdout given"
    real, holdout, synthetic = list(real), list(holdout), list(synthetic)
    if len(real) < 2 or len(holdout) < 2 or len(synthetic) < 2:
        raise ConfigError(f"the text audit needs at least 2 documents on each side (real "
                          f"{len(real)}, holdout {len(holdout)}, synthetic {len(synthetic)})")
    rng = np.random.default_rng(cfg.seed)
    n = min(len(synthetic), len(holdout))
    syn_idx = _sample(len(synthetic), n, rng)
    hold_idx = _sample(len(holdout), n, rng)
    sides = {"synthetic": [synthetic[i] for i in syn_idx],
             "holdout": [holdout[i] for i in hold_idx]}
    data = TextAuditData(sampling={
        "holdout": split, "n_real": len(real), "n_holdout": len(holdout),
        "n_synthetic": len(synthetic), "n_matched": n, "seed": cfg.seed,
        "note": "set-level metrics on seeded samples of n_matched documents per side; the real "
                "reference is never subsampled; per-document rates use every document"})
    metrics: list[MetricResult] = []

    say("tokenising")
    vocab = ng.Vocabulary()
    tok_real = ng.tokenize(real, vocab)
    tok_full = {"synthetic": ng.tokenize(synthetic, vocab), "holdout": ng.tokenize(holdout, vocab)}
    tok = {"synthetic": tok_full["synthetic"].subset(syn_idx),
           "holdout": tok_full["holdout"].subset(hold_idx)}
    for k, t in tok.items():
        data.lengths[k] = t.lengths().tolist()
    data.lengths["real"] = tok_real.lengths().tolist()

    # --- fidelity: n-gram and length distributions ---------------------------------------
    say("n-gram statistics")
    for n_ in (1, 2):
        ref = ng.ngram_distribution(tok_real, n_)
        v = {k: ng.jensen_shannon(ref, ng.ngram_distribution(t, n_)) for k, t in tok.items()}
        name = "unigram_js" if n_ == 1 else "bigram_js"
        metrics.append(_metric(name, "fidelity", v["synthetic"], v["holdout"], "lower", (0, 1),
                               f"Jensen-Shannon divergence of {'word' if n_ == 1 else 'bigram'} "
                               f"frequencies from the real data (base 2)"))
    ks = {k: ks_statistic(np.asarray(data.lengths[k]), tok_real.lengths()) for k in tok}
    metrics.append(_metric("length_ks", "fidelity", ks["synthetic"], ks["holdout"], "lower",
                           (0, 1), "Kolmogorov-Smirnov distance of document lengths (words) "
                           "from the real data",
                           breakdown={"warn_margin": ks_critical(n, len(real))}))

    # --- tails ------------------------------------------------------------------------------
    rare = {}
    for n_ in (1, 2, 3):
        r = {k: ng.rare_ngram_recall(tok_real, t, n_) for k, t in tok.items()}
        rare[n_] = r
    bd = {f"{n_}-gram": {"synthetic": rare[n_]["synthetic"][0],
                         "holdout": rare[n_]["holdout"][0],
                         "rare_in_real": rare[n_]["holdout"][1]} for n_ in rare}
    metrics.append(_metric("rare_ngram_recall", "tails", rare[2]["synthetic"][0],
                           rare[2]["holdout"][0], "higher", (0, 1),
                           "share of the real data's rare bigrams (seen 1-2 times) that appear",
                           breakdown=bd))

    # --- diversity -----------------------------------------------------------------------
    for n_ in (1, 2, 3):
        v = {k: ng.distinct_n(t, n_) for k, t in tok.items()}
        metrics.append(_metric(f"distinct_{n_}", "diversity", v["synthetic"], v["holdout"],
                               "higher", (0, 1), f"distinct-{n_}: unique {n_}-grams / all "
                               f"{n_}-grams"))
    v = {k: ng.unigram_entropy(t) for k, t in tok.items()}
    metrics.append(_metric("unigram_entropy", "diversity", v["synthetic"], v["holdout"],
                           "higher", (0, math.inf), "entropy of the word distribution (bits)"))
    v = {k: compression_ratio(t) for k, t in sides.items()}
    metrics.append(_metric("compression_ratio", "diversity", v["synthetic"], v["holdout"],
                           "lower", (1, math.inf), "raw size / gzip size of the concatenated "
                           "texts (higher = more repetitive)"))
    sb_rng = np.random.default_rng(cfg.seed + 1)
    m = min(cfg.self_bleu_docs, n)
    sb_idx = _sample(n, m, sb_rng)
    v = {k: ng.self_bleu(t, sb_idx) for k, t in tok.items()}
    metrics.append(_metric("self_bleu", "diversity", v["synthetic"], v["holdout"], "lower",
                           (0, 1), f"self-BLEU-4 over {m} sampled documents (higher = more "
                           f"alike)"))
    say("near-duplicates")
    sig = {k: signatures(t, seed=cfg.seed + 2) for k, t in tok.items()}
    v = {k: float(near_duplicate_mask(s, threshold=cfg.near_dup_threshold).mean())
         for k, s in sig.items()}
    metrics.append(_metric("near_duplicate_rate", "diversity", v["synthetic"], v["holdout"],
                           "lower", (0, 1), f"share of documents with a near-duplicate in "
                           f"the same set (MinHash, Jaccard ≥ {cfg.near_dup_threshold})"))

    # --- quality ---------------------------------------------------------------------------
    say("quality rules")
    rates = {k: quality_flag_rates(t, min_words=cfg.min_words) for k, t in sides.items()}
    data.flag_rates = rates
    metrics.append(_metric("heuristic_flag_rate", "quality", rates["synthetic"]["any"],
                           rates["holdout"]["any"], "lower", (0, 1),
                           "share of documents breaking a Gopher quality rule",
                           breakdown={"rules": GOPHER_RULES, **rates,
                                      "warn_margin": rate_margin(rates["holdout"]["any"],
                                                                 rates["synthetic"]["any"], n)}))
    if cfg.ppl_model:
        say(f"perplexity under {cfg.ppl_model}")
        from synthloop.models.registry import load_lm

        lm_key: tuple = (cfg.ppl_model, cfg.device, cfg.ppl_max_tokens)
        lm = remembered(memo, ("lm", *lm_key), lambda: load_lm(cfg.ppl_model,
                                                               device=cfg.device))
        if memo is not None and memo.folder is not None and cfg.ppl_model != "smollm2-135m":
            # a model folder may change under its name: features on disk name its weights
            lm_key = (*lm_key, remembered(memo, ("lm_sha", *lm_key), lm.weights_sha256))

        def doc_stats(side: str, docs: list[str]):
            def compute():
                return _doc_stats(lm, docs, cfg.ppl_max_tokens)
            if side == "synthetic":
                return compute()
            return remembered(memo, ("token_stats", *lm_key, FeatureMemo.texts_key(docs)),
                              compute, save=_stats_arrays, load=_stats_from_arrays)
        p_rng = np.random.default_rng(cfg.seed + 3)
        k_ = min(cfg.ppl_docs, n)
        pidx = _sample(n, k_, p_rng)
        stats = {k: doc_stats(k, [t[i] for i in pidx]) for k, t in sides.items()}
        ppl = {k: np.array([np.exp(-st.logp.mean()) if st.n_tokens else np.nan for st in v])
               for k, v in stats.items()}
        data.perplexities = {k: [float(x) for x in v if np.isfinite(x)] for k, v in ppl.items()}
        med = {k: float(np.nanmedian(v)) for k, v in ppl.items()}
        logks = ks_statistic(np.log(ppl["synthetic"][np.isfinite(ppl["synthetic"])]),
                    np.log(ppl["holdout"][np.isfinite(ppl["holdout"])]))
        metrics.append(_metric(
            "median_perplexity", "quality", med["synthetic"], med["holdout"], "target",
            (0, math.inf), f"median per-document perplexity under {cfg.ppl_model} (first "
            f"{cfg.ppl_max_tokens} tokens of {k_} documents); far from real either way is drift",
            breakdown={"ks_vs_holdout": logks, "model": cfg.ppl_model, "docs": k_}))
        # the user's own real documents: what "human" looks like in this domain
        r_idx = _sample(len(real), min(cfg.ppl_docs, len(real)), p_rng)
        real_stats = doc_stats("real", [real[i] for i in r_idx])
        share = _ai_share_metric(stats, real_stats, cfg.ppl_model, cfg.ppl_max_tokens)
        if share is not None:
            metrics.append(share)

    # --- privacy -----------------------------------------------------------------------------
    say("privacy")
    span = cfg.verbatim_tokens
    real_spans = np.unique(tok_real.ngram_hashes(span)[0])
    v = {k: float(ng.docs_with_hits(t, span, real_spans).mean()) for k, t in tok_full.items()}
    metrics.append(_metric("verbatim_overlap", "privacy", v["synthetic"], v["holdout"], "lower",
                           (0, 1), f"share of documents containing a {span}-word span copied "
                           f"from the real data"))
    sig_real = signatures(tok_real, seed=cfg.seed + 2)
    v = {k: float(near_duplicate_mask(signatures(t, seed=cfg.seed + 2), sig_real,
                                      threshold=cfg.near_dup_threshold).mean())
         for k, t in tok_full.items()}
    metrics.append(_metric("near_duplicates_of_real", "privacy", v["synthetic"], v["holdout"],
                           "lower", (0, 1), "share of documents that are near-duplicates of a "
                           "real document"))
    pii_real: set[str] = set()
    for t in real:
        for items in find_pii(t).values():
            pii_real.update(items)
    pii = {}
    for k, texts in (("synthetic", synthetic), ("holdout", holdout)):
        found = [find_pii(t) for t in texts]
        kinds = {kind: float(np.mean([bool(f[kind]) for f in found])) for kind in found[0]}
        leaked = sorted({x for f in found for items in f.values() for x in items} & pii_real)
        pii[k] = {"rate": float(np.mean([any(f.values()) for f in found])), "by_kind": kinds,
                  "leaked_from_real": len(leaked)}
    metrics.append(_metric("pii_rate", "privacy", pii["synthetic"]["rate"],
                           pii["holdout"]["rate"], "lower", (0, 1),
                           "share of documents containing an email, phone, card number or IBAN",
                           breakdown=pii))

    # --- contamination -------------------------------------------------------------------
    if cfg.benchmark:
        cn = cfg.contamination_n
        tok_bench = ng.tokenize(cfg.benchmark, vocab)
        bench_h, bench_doc = tok_bench.ngram_hashes(cn)
        bench_set = np.unique(bench_h)
        v = {k: float(ng.docs_with_hits(t, cn, bench_set).mean()) for k, t in tok_full.items()}
        syn_h = np.unique(tok_full["synthetic"].ngram_hashes(cn)[0])
        items_hit = int(len(np.unique(bench_doc[np.isin(bench_h, syn_h)])))
        metrics.append(_metric(
            "contamination_rate", "contamination", v["synthetic"], v["holdout"], "lower",
            (0, 1), f"share of documents sharing a {cn}-gram with the benchmark",
            breakdown={"benchmark_items": len(cfg.benchmark),
                       "benchmark_items_hit": items_hit}))

    # --- embeddings ----------------------------------------------------------------------
    if cfg.embeddings:
        say("embeddings")
        def embed(side: str, docs: list[str]) -> np.ndarray:
            def compute():
                return emb.embed(docs, device=cfg.device)
            if side == "synthetic":
                return compute()
            return remembered(memo, ("minilm", cfg.device, FeatureMemo.texts_key(docs)),
                              compute, save=lambda a: {"embeddings": a},
                              load=lambda d: d["embeddings"])

        e_real = embed("real", real)
        e = {k: embed(k, t) for k, t in sides.items()}
        v = {k: emb.frechet_distance(e_real, x) for k, x in e.items()}
        metrics.append(_metric("frechet_distance", "fidelity", v["synthetic"], v["holdout"],
                               "lower", (0, math.inf),
                               "Fréchet distance of MiniLM embeddings from the real data"))
        cap = 4000
        mmd_rng = np.random.default_rng(cfg.seed + 4)
        er = e_real[_sample(len(e_real), cap, mmd_rng)]
        v = {k: emb.mmd_rbf(er, x[_sample(len(x), cap, mmd_rng)]) for k, x in e.items()}
        metrics.append(_metric("mmd", "fidelity", v["synthetic"], v["holdout"], "lower",
                               (0, 2), "squared MMD of MiniLM embeddings (RBF kernel, median "
                               "bandwidth)", breakdown={"max_docs_per_side": cap}))
        pr = {k: emb.prdc(e_real, x) for k, x in e.items()}
        for key, prop in (("precision", "fidelity"), ("density", "fidelity"),
                          ("recall", "diversity"), ("coverage", "tails")):
            metrics.append(_metric(key, prop, pr["synthetic"][key], pr["holdout"][key],
                                   "target" if key == "density" else "higher",
                                   (0, math.inf) if key == "density" else (0, 1),
                                   f"{key} of the embeddings (Naeem et al. 2020, k=5)"))
        v = {k: emb.vendi_score(x) for k, x in e.items()}
        metrics.append(_metric("vendi_score", "diversity", v["synthetic"], v["holdout"],
                               "higher", (1, 384), "Vendi score of the embeddings (effective "
                               "number of distinct documents)"))
        k_clusters = max(2, min(cfg.n_clusters, len(real) // 10))
        centroids, small = emb.tail_clusters(e_real, n_clusters=k_clusters, seed=cfg.seed)
        v = {k: emb.small_cluster_share(x, centroids, small) for k, x in e.items()}
        real_share = emb.small_cluster_share(e_real, centroids, small)
        metrics.append(_metric("small_cluster_share", "tails", v["synthetic"], v["holdout"],
                               "higher", (0, 1), "share of documents in the smallest quarter "
                               f"of {k_clusters} real embedding clusters",
                               breakdown={"real": real_share, "clusters": k_clusters,
                                          "small_clusters": int(small.sum()),
                                          "warn_margin": rate_margin(real_share, real_share,
                                                                     n)}))
        data.embedding_map = _pca_map(e_real, e, cfg.seed)
    return metrics, data


def _pca_map(real: np.ndarray, others: dict[str, np.ndarray], seed: int,
             max_points: int = 1500) -> dict[str, list[list[float]]]:
    """2-D PCA (fitted on real) of up to ``max_points`` points per side, for the report."""
    mu = real.mean(0)
    _, _, vt = np.linalg.svd(real - mu, full_matrices=False)
    rng = np.random.default_rng(seed + 5)
    out = {}
    for k, x in {"real": real, **others}.items():
        pts = (x[_sample(len(x), max_points, rng)] - mu) @ vt[:2].T
        out[k] = np.round(pts, 4).tolist()
    return out
