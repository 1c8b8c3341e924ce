"""Differential privacy for the autoregressive table synthesizer: ``AutoregressiveTable(
epsilon=..., delta=...)``.

The whole fit is (ε, δ)-differentially private with respect to adding or removing one row
(the number of rows is treated as public, as the sampling rate of DP-SGD needs it). Two
Gaussian mechanisms, composed with opacus' Rényi-DP accountant:

1. **The encoding** (about ``codec_share`` of ε). Nothing is read off the data directly:
   every modelled column is counted — categories over the values seen, numbers and dates on a
   fixed public grid (10 cells per decade for numbers, 1e-8 … 1e15 either side of 0; calendar
   months 1900–2100 for dates) — and all the counts are released at once with Gaussian noise
   (each row adds 1 to one cell of every column: L2 sensitivity √columns). A category is kept
   when its noisy count clears ``1 + σ · Φ⁻¹(1 − δ/2 / columns)`` (so that a value held by one
   row shows with probability under δ/2; the others share the ``"_RARE_"`` token), unless the
   column's categories are declared public (``public_categories``). The noisy grid counts set
   each number's quantile bins and, on sampling, which cell of a bin a value falls in
   (uniform inside it). Every column has a missing-value token.
2. **Training**: DP-SGD (Abadi et al. 2016) — Poisson-sampled batches, each row's gradient
   clipped to ``max_grad_norm``, Gaussian noise of ``noise_multiplier · max_grad_norm`` added
   to the sum; the noise multiplier is the smallest that keeps the composition of both
   mechanisms within (ε, δ/2) for the planned steps. No validation split, early stopping,
   dropout or reported loss (each would read the data outside the accountant): a fixed number
   of epochs.

What it costs: coarser values (a grid cell is ~26% wide for numbers, a month for dates),
rare categories masked, and the noise of DP-SGD — measured in docs/tables.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthloop.progress import Progress

ACCOUNTANT = "rdp"


#: Rényi orders searched: fractional ones near 1 and integers to 256 (larger orders only
#: tighten budgets far below ε = 1, and cost time).
ALPHAS = [1.1, 1.25, 1.5, 1.75] + list(range(2, 64)) + list(range(64, 257, 8))


@dataclass
class PrivacySpend:
    """The (ε, δ) a fit spent and how (written into every sampled record's provenance)."""

    epsilon: float
    delta: float
    codec_noise_multiplier: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    epochs: int
    max_grad_norm: float
    accountant: str = f"opacus {ACCOUNTANT} (Rényi DP) over both mechanisms, add/remove one row"

    def to_dict(self) -> dict:
        return {k: (float(f"{v:.6g}") if isinstance(v, float) else v)
                for k, v in vars(self).items()}


def _rdp(z: float, q: float, steps: int) -> np.ndarray:
    """Rényi DP of ``steps`` Gaussian mechanisms of noise multiplier ``z``, Poisson-sampled
    at rate ``q``, at every order of :data:`ALPHAS` (the unsampled one in closed form)."""
    if q >= 1.0:
        return steps * np.asarray(ALPHAS) / (2 * z * z)
    from opacus.accountants.analysis import rdp

    return np.asarray(rdp.compute_rdp(q=q, noise_multiplier=z, steps=steps, orders=ALPHAS))


def rdp_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    """ε at ``delta`` of composed (sub)sampled Gaussian mechanisms ``(noise multiplier,
    sample rate, steps)`` (opacus' RDP-to-(ε, δ) conversion)."""
    import warnings

    from opacus.accountants.analysis import rdp

    total = sum(_rdp(z, q, n) for z, q, n in history)
    with warnings.catch_warnings():  # opacus notes when the best order is the largest one
        warnings.simplefilter("ignore")
        eps, _ = rdp.get_privacy_spent(orders=ALPHAS, rdp=total, delta=delta)
    return float(eps)


def _smallest_noise(fits, lo: float = 0.05, hi: float = 1e4, iters: int = 40) -> float:
    """The smallest noise multiplier for which ``fits(z)`` holds (monotone), by bisection in
    log space."""
    if not fits(hi):
        raise ValueError("no noise multiplier reaches the privacy target")
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def calibrate(epsilon: float, delta: float, codec_share: float, sample_rate: float,
              steps: int) -> tuple[float, float]:
    """``(codec noise multiplier, DP-SGD noise multiplier)``: the codec's the smallest that
    alone costs ``codec_share`` of ε, then DP-SGD's the smallest keeping the composition
    within (ε, δ)."""
    z_c = _smallest_noise(lambda z: rdp_epsilon([(z, 1.0, 1)], delta) <= codec_share * epsilon)
    z = _smallest_noise(lambda z: rdp_epsilon([(z_c, 1.0, 1), (z, sample_rate, steps)],
                                              delta) <= epsilon)
    return z_c, z


def number_grid() -> np.ndarray:
    """Cell edges of the public grid for numbers: 0, ±10^(k/10) for 1e-8 … 1e15."""
    pos = 10.0 ** (np.arange(-80, 151) / 10)
    return np.concatenate([-pos[::-1], [0.0], pos])


def date_grid() -> np.ndarray:
    """Cell edges of the public grid for dates: the first of every month, 1900–2100, as
    nanoseconds since the epoch."""
    return pd.date_range("1900-01-01", "2101-01-01", freq="MS").as_unit("ns") \
        .asi8.astype(np.float64)


def threshold(sigma: float, delta: float, columns: int) -> float:
    """Noisy-count threshold above which a category seen in the data is released: a value
    held by one row clears it with probability at most ``delta / columns``."""
    from scipy.stats import norm

    return 1.0 + sigma * float(norm.isf(delta / max(columns, 1)))


def noisy_counts(values: pd.Series, sigma: float, cut: float, rng: np.random.Generator,
                 public: list | None = None) -> dict:
    """``{value: noisy count}``, most frequent first: of the values whose Gaussian-noised count
    clears ``cut``, or of every ``public`` value (declared, not read off the data)."""
    counts = values.value_counts(dropna=True)
    if public is not None:
        counts = counts.reindex(public, fill_value=0)
    noisy = counts.to_numpy(float) + rng.normal(0.0, sigma, len(counts))
    keep = np.ones(len(counts), bool) if public is not None else noisy >= cut
    out = dict(zip(counts.index[keep], noisy[keep], strict=True))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def noisy_grid_histogram(x: np.ndarray, grid: np.ndarray, sigma: float,
                         rng: np.random.Generator) -> np.ndarray:
    """Gaussian-noised counts of ``x`` (non-missing numbers) per grid cell (values outside the
    grid go to its end cells); cells whose noisy count is below ``σ · Φ⁻¹(1 − 0.05 / cells)``
    are zeroed (post-processing: an empty cell survives with probability under 5% per
    column, so noise does not invent far-off values, nor swamp the quantiles)."""
    from scipy.stats import norm

    cell = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    counts = np.bincount(cell, minlength=len(grid) - 1).astype(float)
    noisy = counts + rng.normal(0.0, sigma, len(counts))
    return np.where(noisy >= sigma * float(norm.isf(0.05 / len(counts))), noisy, 0.0)


def grid_bins(weights: np.ndarray, grid: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner bin edges (grid points) at the quantiles of the noisy grid histogram; an empty
    histogram gives one bin."""
    total = weights.sum()
    if total <= 0:
        return np.zeros(0)
    cdf = np.cumsum(weights) / total
    qs = np.linspace(0, 1, n_bins + 1)[1:-1]
    cells = np.searchsorted(cdf, qs, side="left")
    return np.unique(grid[np.clip(cells + 1, 1, len(grid) - 2)])


def dp_sgd(net, tokens: np.ndarray, masks_for, *, epochs: int, batch_size: int, lr: float,
           noise_multiplier: float, max_grad_norm: float, seed: int, progress: Progress,
           max_seconds: float | None = None, chunk: int = 64) -> tuple[list[dict], int]:
    """Train ``net`` on ``tokens`` with DP-SGD (module docstring). ``masks_for(n, gen)``
    gives the (n, K, K) column-visibility masks of n rows. Returns (history, steps run)."""
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, grad, vmap

    n = len(tokens)
    q = min(1.0, batch_size / n)
    steps_per_epoch = max(1, math.ceil(1 / q))
    params = {k: v for k, v in net.named_parameters()}
    buffers = {k: v for k, v in net.named_buffers()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = torch.as_tensor(tokens)

    def loss_one(p, x, mask):
        logits = functional_call(net, (p, buffers), (x.unsqueeze(0), mask.unsqueeze(1)))
        return F.cross_entropy(logits[:, 0, :], x, reduction="sum")

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    history: list[dict] = []
    t0, done = time.perf_counter(), 0
    net.train()
    progress.stage(f"autoregressive: DP-SGD ({n} rows, σ={noise_multiplier:.2f})", epochs)
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            pick = np.flatnonzero(rng.random(n) < q)
            summed = {k: torch.zeros_like(v) for k, v in params.items()}
            for s in range(0, len(pick), chunk):
                xb = data[pick[s:s + chunk]]
                mb = masks_for(len(xb), gen)
                g = per_sample({k: v.detach() for k, v in params.items()}, xb, mb)
                norms = torch.sqrt(sum(v.reshape(len(xb), -1).pow(2).sum(1) for v in g.values()))
                factor = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
                for k, v in g.items():
                    summed[k] += torch.einsum("b,b...->...", factor, v)
            for k, p in params.items():
                noise = torch.normal(0.0, noise_multiplier * max_grad_norm, p.shape,
                                     generator=gen)
                p.grad = (summed[k] + noise) / (q * n)
            opt.step()
            opt.zero_grad(set_to_none=True)
            done += 1
        # no loss is reported: it would read the data outside the accountant
        history.append({"epoch": epoch + 1, "train_loss": None, "val_loss": None})
        progress.advance()
        if max_seconds and time.perf_counter() - t0 > max_seconds:
            break
    net.eval()
    return history, done
