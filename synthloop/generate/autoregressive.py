"""An autoregressive table synthesizer: every column a categorical distribution conditioned on
the columns before it, learned by one small network per column, trained jointly.

Encoding (fitted once on the real table; :class:`_Codec`):

- numerical / datetime columns with at most ``max_discrete`` distinct values are categorical
  over their exact values; the others are cut into up to ``n_bins`` quantile bins, and a
  sampled bin becomes a value by the empirical quantile function *inside* that bin (a uniform
  position between the bin's sorted real values), so the within-bin shape is the real one and
  no value leaves the real range. Integers stay integers, decimals keep the column's precision
  (at most 6 places), dates keep their resolution (days when every real value is midnight);
- categorical / boolean columns: one token per category seen at least ``rare_min`` times; the
  rarer ones share one token that becomes, on sampling, a frequency-weighted draw among them
  (``rare="sample"``) or the literal ``"_RARE_"`` (``rare="mask"``, privacy protection for
  values that single people out);
- missing values are a token of their own in every column that has them;
- columns named in ``fixed_combinations`` are modelled as one joint column, so only
  combinations seen in the real data come out (e.g. city and state);
- ``id`` columns (unique per row) are not modelled; samples get fresh ids.

Model (:class:`_Net`): column ``j``'s head reads the embeddings of the columns that come
before it in the generation order (the others are zeroed, and a mask says which are present),
through two hidden layers (all heads batched as one matrix product). Training (Adam, dropout,
``val_fraction`` of the rows held out, early stopping on the held-out loss with the best
weights kept) mixes the table's own column order with random orders (``order_mixing``), so a
sample can fix any set of columns and draw the rest: conditional sampling and rebalancing.

Cost: one epoch is ``ceil(rows / batch)`` steps of a few matrix products of width
``hidden``; memory is the encoded table (int64, rows × columns) plus the model. Everything is
held in memory: a 1M-row × 50-column table takes ~400 MB encoded.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from synthloop.errors import ConfigError, InputError
from synthloop.generate.copula import Constraint
from synthloop.measures.columns import as_datetimes, infer_column_types
from synthloop.progress import NullProgress, Progress

RARE = "_RARE_"
_MISSING = object()  # token value of a missing cell


@dataclass
class _Column:
    """How one model column (a table column, or a fixed combination) maps to tokens."""

    names: list[str]                  # table columns it stands for (several: a combination)
    kind: str                         # "category" (exact values) or "binned"
    sdtype: str                       # the table column's sdtype (first name's)
    values: list = field(default_factory=list)    # token -> value (category kind)
    rare_pool: list = field(default_factory=list)  # rare values and their weights
    rare_weights: np.ndarray | None = None
    counts: np.ndarray | None = None  # real count of each kept value (category kind)
    edges: np.ndarray | None = None   # binned: inner edges (searchsorted right)
    sorted_x: np.ndarray | None = None
    starts: np.ndarray | None = None  # binned: first index of each bin in sorted_x
    has_missing: bool = False
    decimals: int | None = None       # numeric rounding (None: integer column as ints)
    integer: bool = False
    day_resolution: bool = False
    grid: np.ndarray | None = None    # differential privacy: public grid cell edges ...
    grid_w: np.ndarray | None = None  # ... and their noisy counts (within-bin draws)

    @property
    def size(self) -> int:
        base = len(self.values) + (1 if self.rare_pool else 0) if self.kind == "category" \
            else len(self.starts)
        return base + (1 if self.has_missing else 0)


def _decimals(x: np.ndarray) -> int:
    for d in range(7):
        if np.allclose(x, np.round(x, d), rtol=0, atol=1e-9 * max(1.0, float(np.abs(x).max()))):
            return d
    return 6


class _Codec:
    """Column encodings of one table (see the module docstring)."""

    def __init__(self, df: pd.DataFrame, types: dict[str, str], *, n_bins: int,
                 max_discrete: int, rare_min: int, combos: list[list[str]]) -> None:
        self.types = types
        in_combo = {c for g in combos for c in g}
        self.columns: list[_Column] = []
        for c in df.columns:
            if types[c] == "id" or c in in_combo:
                if c in in_combo and any(g[0] == c for g in combos):
                    g = next(g for g in combos if g[0] == c)
                    keys = pd.Series(list(zip(*(df[x] for x in g), strict=True)), dtype=object)
                    self.columns.append(self._category(g, types[c], keys, rare_min))
                continue
            s = df[c]
            if types[c] in ("numerical", "datetime"):
                x = _numbers(s)
                ok = ~np.isnan(x)
                if ok.sum() == 0 or len(np.unique(x[ok])) <= max_discrete:
                    self.columns.append(self._category([c], types[c], s, 1))
                else:
                    self.columns.append(self._binned(c, types[c], x, n_bins))
            else:
                self.columns.append(self._category([c], types[c], s, rare_min))

    @staticmethod
    def _category(names, sdtype, s: pd.Series, rare_min: int) -> _Column:
        miss = s.isna().to_numpy() if s.dtype != object or len(names) == 1 else \
            np.zeros(len(s), bool)
        counts = s[~miss].value_counts(sort=True, dropna=True)
        keep = counts[counts >= rare_min]
        rare = counts[counts < rare_min]
        col = _Column(list(names), "category", sdtype, values=list(keep.index),
                      counts=keep.to_numpy(float), has_missing=bool(miss.any()))
        if len(rare):
            col.rare_pool = list(rare.index)
            col.rare_weights = rare.to_numpy(float) / rare.sum()
        return col

    @staticmethod
    def _binned(c: str, sdtype: str, x: np.ndarray, n_bins: int) -> _Column:
        ok = ~np.isnan(x)
        xs = np.sort(x[ok])
        edges = np.unique(np.quantile(xs, np.linspace(0, 1, n_bins + 1)[1:-1]))
        # bin b holds edges[b-1] <= x < edges[b] (as encode's searchsorted "right" assigns)
        starts = np.searchsorted(xs, np.concatenate([[-np.inf], edges]), side="left")
        col = _Column([c], "binned", sdtype, edges=edges, sorted_x=xs, starts=starts,
                      has_missing=bool((~ok).any()))
        if sdtype == "datetime":
            col.day_resolution = bool(np.all(xs % 86_400e9 == 0))
        else:
            col.integer = bool(np.all(xs == np.round(xs)))
            col.decimals = None if col.integer else _decimals(xs)
        return col

    # -- table <-> tokens -------------------------------------------------------------------
    def encode(self, df: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(df), len(self.columns)), dtype=np.int64)
        for j, col in enumerate(self.columns):
            out[:, j] = self.encode_column(col, df)
        return out

    def encode_column(self, col: _Column, df: pd.DataFrame) -> np.ndarray:
        if col.kind == "binned":
            x = _numbers(df[col.names[0]])
            tok = np.searchsorted(col.edges, np.nan_to_num(x), side="right")
            return np.where(np.isnan(x), col.size - 1, tok) if col.has_missing else tok
        if len(col.names) > 1:
            s = pd.Series(list(zip(*(df[x] for x in col.names), strict=True)), dtype=object)
        else:
            s = df[col.names[0]]
        index = {v: i for i, v in enumerate(col.values)}
        rare_tok = len(col.values) if col.rare_pool else None
        miss_tok = col.size - 1 if col.has_missing else None
        isna = s.isna().to_numpy() if len(col.names) == 1 else np.zeros(len(s), bool)
        nearest = None
        if col.sdtype in ("numerical", "datetime") and len(col.names) == 1 and col.values:
            # a discrete numeric column: a value between the seen ones (a condition drawn by
            # another model) takes the token of the nearest seen value
            known = _numbers(pd.Series(col.values))
            nearest = (np.sort(known), np.argsort(known))
        toks = np.empty(len(s), dtype=np.int64)
        for i, (v, na) in enumerate(zip(s.tolist(), isna, strict=True)):
            t = miss_tok if na else index.get(v, rare_tok)
            if t is None and nearest is not None:
                t = int(_nearest_index(nearest, _numbers(pd.Series([v]))[0]))
            if t is None:
                raise InputError(f"column '{col.names[0]}': value {v!r} was not seen in the "
                                 f"table the model was fitted on")
            toks[i] = t
        return toks

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> dict[str, pd.Series]:
        out: dict[str, pd.Series] = {}
        for j, col in enumerate(self.columns):
            t = tokens[:, j]
            miss = (t == col.size - 1) if col.has_missing else np.zeros(len(t), bool)
            if col.kind == "binned" and col.grid is not None:
                out[col.names[0]] = self._numeric_series(col, _grid_values(col, t, rng), miss)
                continue
            if col.kind == "binned":
                b = np.clip(t, 0, len(col.starts) - 1)
                lo = col.starts[b]
                hi = np.append(col.starts[1:], len(col.sorted_x))[b] - 1
                pos = lo + rng.uniform(0, 1, len(t)) * np.maximum(hi - lo, 0)
                v = np.interp(pos, np.arange(len(col.sorted_x)), col.sorted_x)
                out[col.names[0]] = self._numeric_series(col, v, miss)
                continue
            vals = np.empty(len(t), dtype=object)
            k = len(col.values)
            known = (t < k) & ~miss
            vals[known] = np.asarray(col.values + [None], dtype=object)[t[known]]
            rare = (t == k) & ~miss & bool(col.rare_pool)
            if rare.any():
                pick = rng.choice(len(col.rare_pool), size=int(rare.sum()), p=col.rare_weights)
                vals[rare] = np.asarray(col.rare_pool, dtype=object)[pick]
            vals[miss] = None
            if len(col.names) > 1:
                for i, name in enumerate(col.names):
                    out[name] = pd.Series([None if v is None else v[i] for v in vals],
                                          dtype=object)
            else:
                out[col.names[0]] = pd.Series(vals, dtype=object)
        return out

    @staticmethod
    def _numeric_series(col: _Column, v: np.ndarray, miss: np.ndarray) -> pd.Series:
        if col.sdtype == "datetime":
            if col.day_resolution:
                v = np.round(v / 86_400e9) * 86_400e9
            s = pd.Series(pd.to_datetime(np.round(v).astype("int64")))
            return s.where(~miss, pd.NaT)
        v = np.round(v) if col.integer else np.round(v, col.decimals)
        v = v.astype(float)
        v[miss] = np.nan
        return pd.Series(v)


def _grid_values(col: _Column, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values for bin tokens of a DP column: a grid cell of the bin drawn by its noisy
    count, then a uniform position in the cell."""
    cells = len(col.grid) - 1
    bounds = np.concatenate([[0], np.searchsorted(col.grid, col.edges, side="left"), [cells]])
    out = np.full(len(t), np.nan)
    for b in np.unique(t):
        if b >= len(bounds) - 1:  # the missing token
            continue
        rows = np.flatnonzero(t == b)
        lo, hi = int(bounds[b]), max(int(bounds[b + 1]), int(bounds[b]) + 1)
        w = col.grid_w[lo:hi]
        if w.sum() <= 0:  # no released cell in this bin: the nearest released one
            live = np.flatnonzero(col.grid_w > 0)
            if not len(live):  # nothing was released about the column: unknown
                continue
            near = live[np.argmin(np.minimum(np.abs(live - lo), np.abs(live - (hi - 1))))]
            lo, hi, w = int(near), int(near) + 1, np.ones(1)
        cell = lo + rng.choice(hi - lo, size=len(rows), p=w / w.sum())
        out[rows] = col.grid[cell] + rng.uniform(0, 1, len(rows)) * \
            (col.grid[cell + 1] - col.grid[cell])
    return out


def private_codec(df: pd.DataFrame, types: dict[str, str], *, n_bins: int,
                  combos: list[list[str]], noise_multiplier: float, delta: float, dtypes: dict,
                  public_categories: dict[str, list], rng: np.random.Generator) -> _Codec:
    """A :class:`_Codec` released with differential privacy (:mod:`synthloop.generate.dp`):
    every column's counts with Gaussian noise of ``noise_multiplier`` × √columns; categories
    kept above a threshold (or declared in ``public_categories``), numbers and dates binned on
    a public grid."""
    from synthloop.generate import dp

    codec = _Codec.__new__(_Codec)
    codec.types = types
    codec.columns = []
    in_combo = {c for g in combos for c in g}
    k = sum(1 for c in df.columns if types[c] != "id" and c not in in_combo) + len(combos)
    sigma = noise_multiplier * math.sqrt(max(k, 1))
    cut = dp.threshold(sigma, delta, k)
    for c in df.columns:
        if types[c] == "id" or (c in in_combo and not any(g[0] == c for g in combos)):
            continue
        if c in in_combo:
            g = next(g for g in combos if g[0] == c)
            keys = pd.Series(list(zip(*(df[x] for x in g), strict=True)), dtype=object)
            kept = dp.noisy_counts(keys, sigma, cut, rng)
            codec.columns.append(_private_category(g, types[c], kept))
        elif types[c] in ("numerical", "datetime") and c not in public_categories:
            grid = dp.date_grid() if types[c] == "datetime" else dp.number_grid()
            x = _numbers(df[c])
            w = dp.noisy_grid_histogram(x[~np.isnan(x)], grid, sigma, rng)
            edges = dp.grid_bins(w, grid, n_bins)
            col = _Column([c], "binned", types[c], edges=edges,
                          starts=np.arange(len(edges) + 1), has_missing=True, grid=grid,
                          grid_w=w)
            if types[c] == "datetime":
                col.day_resolution = True
            else:  # the schema's dtype, not the values, says whether it holds integers
                col.integer = bool(pd.api.types.is_integer_dtype(dtypes[c]))
                col.decimals = None if col.integer else 6
            codec.columns.append(col)
        else:
            kept = dp.noisy_counts(df[c], sigma, cut, rng, public=public_categories.get(c))
            codec.columns.append(_private_category([c], types[c], kept))
    return codec


def _private_category(names, sdtype, kept: dict) -> _Column:
    return _Column(list(names), "category", sdtype, values=list(kept),
                   counts=np.maximum(np.asarray(list(kept.values()), float), 1.0),
                   rare_pool=[RARE], rare_weights=np.ones(1), has_missing=True)


def _nearest_index(known: tuple[np.ndarray, np.ndarray], x: float) -> int:
    """Index (into the unsorted values) of the value nearest ``x``; ``known`` is (sorted
    values, argsort)."""
    xs, order = known
    i = int(np.clip(np.searchsorted(xs, x), 1, len(xs) - 1)) if len(xs) > 1 else 0
    if len(xs) > 1 and abs(x - xs[i - 1]) <= abs(xs[i] - x):
        i -= 1
    return int(order[i])


def _numbers(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(s):
        v = s.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        v[s.isna().to_numpy()] = np.nan
        return v
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)


def _net(sizes: list[int], emb_dims: list[int], hidden: int, dropout: float):
    """The per-column heads as batched weights (see the module docstring)."""
    import torch
    from torch import nn

    class _Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            k = len(sizes)
            self.k = k
            self.sizes = sizes
            self.vmax = max(sizes)
            self.emb = nn.ModuleList(nn.Embedding(v, d) for v, d in zip(sizes, emb_dims,
                                                                         strict=True))
            self.dims = emb_dims
            d_in = sum(emb_dims) + k
            # column j's context: the embeddings of the columns before it, expanded per dim
            self.owner = torch.tensor([j for j, d in enumerate(emb_dims) for _ in range(d)])
            scale = 1 / math.sqrt(d_in)
            self.w1 = nn.Parameter(torch.randn(k, d_in, hidden) * scale)
            self.b1 = nn.Parameter(torch.zeros(k, 1, hidden))
            self.w2 = nn.Parameter(torch.randn(k, hidden, hidden) / math.sqrt(hidden))
            self.b2 = nn.Parameter(torch.zeros(k, 1, hidden))
            self.w3 = nn.Parameter(torch.randn(k, hidden, self.vmax) / math.sqrt(hidden))
            self.b3 = nn.Parameter(torch.zeros(k, 1, self.vmax))
            invalid = torch.zeros(k, 1, self.vmax, dtype=torch.bool)
            for j, v in enumerate(sizes):
                invalid[j, 0, v:] = True
            self.register_buffer("invalid", invalid)
            self.drop = nn.Dropout(dropout)

        def forward(self, x, mask):  # (B, K) tokens, (H, B, K) mask -> (H, B, vmax)
            return self.logits(self.embed(x), mask)

        def embed(self, x):  # (B, K) -> (B, D)
            return torch.cat([e(x[:, j]) for j, e in enumerate(self.emb)], dim=1)

        def logits(self, e, mask, heads=None):
            """e (B, D) embeddings, mask (H, B, K) bool: which columns each head sees;
            heads: the head indices (default all). Returns (H, B, vmax)."""
            idx = torch.arange(self.k) if heads is None else torch.as_tensor(heads)
            m = mask.float()
            inp = torch.cat([e.unsqueeze(0) * m[:, :, self.owner], m], dim=2)
            h = torch.relu(torch.baddbmm(self.b1[idx], inp, self.w1[idx]))
            h = self.drop(h)
            h = torch.relu(torch.baddbmm(self.b2[idx], h, self.w2[idx]))
            h = self.drop(h)
            out = torch.baddbmm(self.b3[idx], h, self.w3[idx])
            return out.masked_fill(self.invalid[idx], float("-inf"))

    return _Net()


class AutoregressiveTable:
    """Autoregressive synthesizer for mixed-type tables (see the module docstring).

    Args:
        column_types: sdtype overrides (``numerical``, ``categorical``, ``datetime``,
            ``boolean``, ``id``); the rest are inferred as the audit infers them.
        constraints: comparisons every sampled row must satisfy (``"a <= b"``), by rejection.
        fixed_combinations: groups of columns whose value combinations must be real ones.
        n_bins: quantile bins per continuous column (2–1000; ``None``: √rows / 3, clipped
            to 16–64 — coarse bins for small tables, whose conditionals are noisy).
        max_discrete: a numeric column with at most this many distinct values is modelled
            over its exact values.
        rare_min: categories seen fewer times share one token (≥ 1; 1 = none are rare).
        rare: ``sample`` (a rare token becomes a frequency-weighted rare category) or ``mask``
            (it becomes ``"_RARE_"``).
        hidden: width of each column's hidden layers (8–2048; ``None``: 128, 64 under DP).
        dropout: dropout rate in [0, 0.9).
        order_mixing: share of training rows seen in a random column order, in [0, 1]; > 0
            lets ``sample(conditions=...)`` fix any columns.
        max_epochs, patience: early stopping on the held-out loss (epochs without a better
            one), ``val_fraction`` of the rows held out (0 < f < 0.5).
        batch_size: rows per step (``None``: from the table size, 64–1024).
        lr: Adam learning rate (``None``: 1e-3, 3e-3 under DP).
        max_seconds: wall-clock cap on training (``None``: none).
        threads: torch threads (``None``: torch's default).
        epsilon: differential privacy: the fit is (ε, δ)-DP for this ε > 0
            (:mod:`synthloop.generate.dp`; ``None`` or ``math.inf``: no privacy). Under DP
            there is no validation split, early stopping or dropout: ``dp_epochs`` epochs of
            DP-SGD; rare categories become ``"_RARE_"``.
        delta: the δ of (ε, δ) (default: 1 / (10 · rows)).
        max_grad_norm: DP-SGD's per-row gradient clipping norm.
        codec_share: the share of ε spent on releasing the encoding (bins, categories).
        dp_epochs: epochs of DP-SGD (the noise is calibrated to them).
        public_categories: ``{column: [values]}`` declared public under DP (e.g. the codes of
            a standard): all are kept, none is read off the data.
    """

    def __init__(self, column_types: dict[str, str] | None = None, constraints: list[str] = (),
                 *, fixed_combinations: list[list[str]] = (), n_bins: int | None = None,
                 max_discrete: int = 16, rare_min: int = 5, rare: str = "sample",
                 hidden: int | None = None, dropout: float = 0.3, order_mixing: float = 0.25,
                 max_epochs: int = 300, patience: int = 8, val_fraction: float = 0.1,
                 batch_size: int | None = None, lr: float | None = None,
                 max_seconds: float | None = None, threads: int | None = None,
                 epsilon: float | None = None, delta: float | None = None,
                 max_grad_norm: float = 1.0, codec_share: float = 0.3,
                 dp_epochs: int = 60, public_categories: dict[str, list] | None = None
                 ) -> None:
        checks = [(n_bins is None or 2 <= n_bins <= 1000, "n_bins", "in 2..1000"),
                  (1 <= max_discrete <= 10_000, "max_discrete", "in 1..10000"),
                  (rare_min >= 1, "rare_min", "≥ 1"),
                  (rare in ("sample", "mask"), "rare", "'sample' or 'mask'"),
                  (hidden is None or 8 <= hidden <= 2048, "hidden", "in 8..2048"),
                  (0 <= dropout < 0.9, "dropout", "in [0, 0.9)"),
                  (0 <= order_mixing <= 1, "order_mixing", "in [0, 1]"),
                  (max_epochs >= 1, "max_epochs", "≥ 1"), (patience >= 1, "patience", "≥ 1"),
                  (0 < val_fraction < 0.5, "val_fraction", "in (0, 0.5)"),
                  (batch_size is None or batch_size >= 1, "batch_size", "≥ 1"),
                  (lr is None or lr > 0, "lr", "> 0"),
                  (max_seconds is None or max_seconds > 0, "max_seconds", "> 0"),
                  (epsilon is None or epsilon > 0, "epsilon", "> 0 (math.inf: no privacy)"),
                  (delta is None or 0 < delta < 1, "delta", "in (0, 1)"),
                  (max_grad_norm > 0, "max_grad_norm", "> 0"),
                  (0 < codec_share < 1, "codec_share", "in (0, 1)"),
                  (dp_epochs >= 1, "dp_epochs", "≥ 1")]
        for ok, name, want in checks:
            if not ok:
                raise ConfigError(f"autoregressive: {name} must be {want}", fields=(name,))
        self.column_types = dict(column_types or {})
        self.constraint_specs = list(constraints)
        self.fixed_combinations = [list(g) for g in fixed_combinations]
        self.params = dict(n_bins=n_bins, max_discrete=max_discrete, rare_min=rare_min,
                           rare=rare, hidden=hidden, dropout=dropout, order_mixing=order_mixing,
                           max_epochs=max_epochs, patience=patience, val_fraction=val_fraction,
                           batch_size=batch_size, lr=lr, max_seconds=max_seconds)
        self.threads = threads
        self.epsilon = None if epsilon is None or math.isinf(epsilon) else float(epsilon)
        private = self.epsilon is not None
        # DP-SGD's noise grows with the number of weights: a narrower model, larger steps
        self.params.update(hidden=hidden or (64 if private else 128),
                           lr=lr or (3e-3 if private else 1e-3))
        if private:
            self.params.update(dropout=0.0)
        self.dp_params = dict(delta=delta, max_grad_norm=max_grad_norm,
                              codec_share=codec_share, dp_epochs=dp_epochs,
                              public_categories={c: list(v) for c, v in
                                                 (public_categories or {}).items()})
        self.privacy = None  # the PrivacySpend of a private fit
        self._fitted = False

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, *, seed: int = 0,
            progress: Progress | None = None) -> AutoregressiveTable:
        """Fit on ``df`` (seeded). ``threads`` holds for this fit only: torch's thread count
        is restored afterwards (it is process-wide state)."""
        import torch

        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return self._fit(df, seed=seed, progress=progress)
        finally:
            torch.set_num_threads(before)

    def _fit(self, df: pd.DataFrame, *, seed: int, progress: Progress | None
             ) -> AutoregressiveTable:
        import torch

        progress = progress or NullProgress()
        p = self.params
        if len(df) < 10:
            raise InputError(f"the autoregressive model needs at least 10 rows to fit, "
                             f"got {len(df)}")
        self.columns = list(df.columns)
        self.types = infer_column_types(df, self.column_types)
        for g in self.fixed_combinations:
            bad = [c for c in g if c not in self.columns]
            if bad or len(g) < 2:
                raise ConfigError(f"fixed_combinations {g}: " + (
                    f"no column '{bad[0]}'" if bad else "needs at least two columns"))
        seen: set[str] = set()
        for g in self.fixed_combinations:
            if seen & set(g):
                raise ConfigError(f"fixed_combinations: '{sorted(seen & set(g))[0]}' is in two "
                                  f"groups")
            seen |= set(g)
        df = as_datetimes({"real": df}, self.types)["real"]
        self.constraints = [Constraint.parse(c, self.columns) for c in self.constraint_specs]
        self.dtypes = {c: df[c].dtype for c in self.columns}
        self.n_bins = p["n_bins"] or int(np.clip(round(math.sqrt(len(df)) / 3), 16, 64))
        if self.epsilon is not None:
            from synthloop.generate import dp

            delta = self.dp_params["delta"] or 1 / (10 * len(df))
            bs = p["batch_size"] or int(np.clip(len(df) // 4, 64, 1024))
            q = min(1.0, bs / len(df))
            planned = self.dp_params["dp_epochs"] * max(1, math.ceil(1 / q))
            z_codec, z_sgd = dp.calibrate(self.epsilon, delta / 2,
                                          self.dp_params["codec_share"], q, planned)
            bad = [c for c in self.dp_params["public_categories"] if c not in self.columns]
            if bad:
                raise ConfigError(f"public_categories: no column '{bad[0]}'")
            self.codec = private_codec(df, self.types, n_bins=self.n_bins,
                                       combos=self.fixed_combinations, noise_multiplier=z_codec,
                                       delta=delta / 2, dtypes=self.dtypes,
                                       public_categories=self.dp_params["public_categories"],
                                       rng=np.random.default_rng([seed, 1]))
        else:
            self.codec = _Codec(df, self.types, n_bins=self.n_bins,
                                max_discrete=p["max_discrete"], rare_min=p["rare_min"],
                                combos=self.fixed_combinations)
        if not self.codec.columns:
            raise InputError("the table has no column to model (all are ids)")
        tokens = self.codec.encode(df)
        sizes = [c.size for c in self.codec.columns]
        emb = [max(2, min(24, round(1.6 * v ** 0.56))) for v in sizes]
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        self.net = _net(sizes, emb, p["hidden"], p["dropout"])
        if self.epsilon is not None:
            return self._fit_private(tokens, delta, z_codec, z_sgd, bs, seed, progress)
        perm = rng.permutation(len(tokens))
        n_val = max(1, int(round(len(tokens) * p["val_fraction"])))
        val = torch.as_tensor(tokens[perm[:n_val]])
        train = torch.as_tensor(tokens[perm[n_val:]])
        bs = p["batch_size"] or int(np.clip(2 ** round(math.log2(max(len(train) / 25, 1))),
                                            64, 1024))
        opt = torch.optim.Adam(self.net.parameters(), lr=p["lr"])
        steps = math.ceil(len(train) / bs)
        best, best_state, bad_epochs, t0 = math.inf, None, 0, time.perf_counter()
        progress.stage(f"autoregressive: train ({len(train)} rows, {len(sizes)} columns)",
                       p["max_epochs"])
        gen = torch.Generator().manual_seed(seed)
        self.history: list[dict] = []
        for epoch in range(p["max_epochs"]):
            self.net.train()
            order = torch.randperm(len(train), generator=gen)
            total = 0.0
            for s in range(steps):
                batch = train[order[s * bs:(s + 1) * bs]]
                loss = self._loss(batch, gen, p["order_mixing"])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(batch)
            vloss = self._val_loss(val)
            self.history.append({"epoch": epoch + 1, "train_loss": total / len(train),
                                 "val_loss": vloss})
            progress.advance()
            if vloss < best - 1e-4:
                best, bad_epochs = vloss, 0
                best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
            else:
                bad_epochs += 1
            if bad_epochs >= p["patience"] or (
                    p["max_seconds"] and time.perf_counter() - t0 > p["max_seconds"]):
                break
        self.net.load_state_dict(best_state)
        self.net.eval()
        self.epochs = len(self.history)
        self.val_loss = best
        self.n_fit = len(df)
        self._fitted = True
        progress.log(f"autoregressive: {self.epochs} epochs, held-out loss {best:.4f} nats/row "
                     f"({time.perf_counter() - t0:.1f} s)")
        return self

    def _fit_private(self, tokens: np.ndarray, delta: float, z_codec: float, z_sgd: float,
                     batch_size: int, seed: int, progress: Progress) -> AutoregressiveTable:
        """DP-SGD on every row for ``dp_epochs`` epochs (:mod:`synthloop.generate.dp`)."""
        from synthloop.generate import dp

        p, n = self.params, len(tokens)
        q = min(1.0, batch_size / n)
        t0 = time.perf_counter()
        self.history, done = dp.dp_sgd(
            self.net, tokens, lambda m, g: self._masks(m, g, p["order_mixing"]).permute(1, 0, 2),
            epochs=self.dp_params["dp_epochs"], batch_size=batch_size, lr=p["lr"],
            noise_multiplier=z_sgd, max_grad_norm=self.dp_params["max_grad_norm"], seed=seed,
            progress=progress, max_seconds=p["max_seconds"])
        self.privacy = dp.PrivacySpend(
            epsilon=dp.rdp_epsilon([(z_codec, 1.0, 1), (z_sgd, q, done)], delta / 2),
            delta=delta, codec_noise_multiplier=z_codec, noise_multiplier=z_sgd,
            sample_rate=q, steps=done, epochs=len(self.history),
            max_grad_norm=self.dp_params["max_grad_norm"])
        self.net.eval()
        self.epochs = len(self.history)
        self.val_loss = None
        self.n_fit = n
        self._fitted = True
        progress.log(f"autoregressive: ({self.privacy.epsilon:.3g}, {delta:.2g})-DP, "
                     f"{self.epochs} epochs of DP-SGD (noise {z_sgd:.2f}, {done} steps; "
                     f"encoding noise {z_codec:.1f}; {time.perf_counter() - t0:.1f} s)")
        return self

    def _masks(self, n: int, gen, mixing: float):
        """(K, n, K) bool: mask[j, i, k] — head j sees column k for row i."""
        import torch

        k = self.net.k
        rank = torch.arange(k).expand(n, k).clone()
        if mixing > 0:
            rnd = torch.rand(n, generator=gen) < mixing
            if rnd.any():
                rank[rnd] = torch.argsort(torch.rand(int(rnd.sum()), k, generator=gen), dim=1)
        # column k is seen by head j when it comes earlier in row i's order
        return (rank.unsqueeze(0) < rank.T.unsqueeze(2))

    def _nll(self, batch, mask):
        import torch.nn.functional as F

        logits = self.net.logits(self.net.embed(batch), mask)       # (K, B, V)
        k, b, v = logits.shape
        return F.cross_entropy(logits.reshape(k * b, v), batch.T.reshape(-1),
                               reduction="sum") / b

    def _loss(self, batch, gen, mixing):
        return self._nll(batch, self._masks(len(batch), gen, mixing))

    def _val_loss(self, val) -> float:
        import torch

        self.net.eval()
        with torch.no_grad():
            total = 0.0
            for s in range(0, len(val), 4096):
                b = val[s:s + 4096]
                total += float(self._nll(b, self._masks(len(b), None, 0.0))) * len(b)
        return total / len(val)

    def fingerprint(self) -> str:
        """sha256 of the fitted weights and encodings (the 'weights hash' of this generator)."""
        if not self._fitted:
            raise RuntimeError("fit first")
        h = hashlib.sha256(repr((self.types, self.params, self.constraint_specs,
                                 self.fixed_combinations)).encode())
        for k, v in sorted(self.net.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().numpy().tobytes())
        for col in self.codec.columns:
            h.update(repr((col.names, col.kind, col.size)).encode())
            if col.sorted_x is not None:
                h.update(col.sorted_x.tobytes())
            if col.grid_w is not None:
                h.update(col.edges.tobytes() + col.grid_w.tobytes())
        if self.privacy is not None:
            h.update(repr(sorted(self.privacy.to_dict().items())).encode())
        return h.hexdigest()

    # -- sampling -----------------------------------------------------------------------------
    def _draw_tokens(self, n: int, fixed: dict[int, np.ndarray], rng: np.random.Generator,
                     temperature: float) -> np.ndarray:
        import torch

        k = self.net.k
        order = [j for j in range(k) if j in fixed] + [j for j in range(k) if j not in fixed]
        tokens = np.zeros((n, k), dtype=np.int64)
        for j, t in fixed.items():
            tokens[:, j] = t
        seen = np.zeros(k, dtype=bool)
        for j in order:
            if j in fixed:
                seen[j] = True
                continue
            for s in range(0, n, 8192):
                x = torch.as_tensor(tokens[s:s + 8192])
                mask = torch.as_tensor(seen).expand(1, len(x), k)
                with torch.no_grad():
                    logits = self.net.logits(self.net.embed(x), mask, heads=[j])[0]
                    prob = torch.softmax(logits.double() / temperature, dim=1).numpy()
                cum = np.cumsum(prob, axis=1)
                u = rng.uniform(0, 1, (len(x), 1)) * cum[:, -1:]
                tokens[s:s + 8192, j] = np.minimum((cum < u).sum(axis=1), self.net.sizes[j] - 1)
            seen[j] = True
        return tokens

    def _condition_tokens(self, conditions: pd.DataFrame, n: int) -> dict[int, np.ndarray]:
        fixed: dict[int, np.ndarray] = {}
        cond = as_datetimes({"conditions": conditions},
                            {c: self.types[c] for c in conditions.columns})["conditions"]
        for j, col in enumerate(self.codec.columns):
            named = [c for c in col.names if c in cond.columns]
            if not named:
                continue
            if len(named) < len(col.names):
                raise ConfigError(f"conditions: fix all of the combination {col.names} or none")
            if self.params["order_mixing"] == 0 and j != len(fixed):
                raise ConfigError("conditions: this model was trained with order_mixing 0; it "
                                  "can only fix a prefix of the columns")
            fixed[j] = self.codec.encode_column(col, cond)
        return fixed

    def sample(self, n: int, *, seed: int = 0, conditions: pd.DataFrame | dict | None = None,
               rebalance: dict[str, dict] | None = None, temperature: float = 1.0,
               max_tries: int = 50) -> pd.DataFrame:
        """``n`` rows satisfying every constraint, repeatable for a seed.

        Args:
            conditions: fixed values: a dict ``{column: value}`` (every row) or a frame of
                ``n`` rows with some of the columns; the other columns are drawn given them.
            rebalance: ``{column: {category: share}}``: the column's listed categories get
                these shares, the rest keep their relative real frequencies.
            temperature: softmax temperature (> 0; 1 samples the learned distribution).
        """
        if not self._fitted:
            raise RuntimeError("fit first")
        if n < 0:
            raise ConfigError(f"n must be ≥ 0, got {n}")
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        rng = np.random.default_rng(seed)
        cond = self._conditions_frame(n, conditions, rebalance, rng)
        if cond is not None:  # row i of the output keeps row i of the conditions
            out = self._draw(n, cond, rng, temperature)
            pending = np.flatnonzero(~self._holds(out))
            for _ in range(max_tries):
                if not len(pending):
                    break
                redo = self._draw(len(pending), cond.iloc[pending].reset_index(drop=True), rng,
                                  temperature)
                ok = self._holds(redo)
                out.iloc[pending[ok]] = redo[ok].to_numpy()
                pending = pending[~ok]
            have = n - len(pending)
        else:
            parts, have = [], 0
            for _ in range(max_tries):
                m = max(n - have, 16) * 2 if self.constraints else n - have
                batch = self._draw(m, None, rng, temperature)
                batch = batch[self._holds(batch)]
                parts.append(batch)
                have += len(batch)
                if have >= n:
                    break
            out = pd.concat(parts, ignore_index=True).iloc[:n].reset_index(drop=True)
        if have < n:
            raise InputError(f"constraints {self.constraint_specs} hold for too few sampled "
                             f"rows ({have} of {n} after {max_tries} rounds)")
        for c in self.columns:
            if self.types[c] == "id":
                out[c] = [f"syn-{seed}-{i}" for i in range(len(out))]
        return out

    def _holds(self, batch: pd.DataFrame) -> np.ndarray:
        ok = np.ones(len(batch), dtype=bool)
        for con in self.constraints:
            ok &= con.holds(batch)
        return ok

    def _conditions_frame(self, n, conditions, rebalance, rng) -> pd.DataFrame | None:
        frames = []
        if conditions is not None:
            if isinstance(conditions, dict):
                conditions = pd.DataFrame({c: [v] * n for c, v in conditions.items()})
            if len(conditions) != n:
                raise ConfigError(f"conditions: {len(conditions)} rows, expected n = {n}")
            frames.append(conditions.reset_index(drop=True))
        for c, shares in (rebalance or {}).items():
            frames.append(pd.DataFrame({c: self._rebalanced(c, shares, n, rng)}))
        if not frames:
            return None
        cond = pd.concat(frames, axis=1)
        bad = [c for c in cond.columns if c not in self.columns]
        if bad:
            raise ConfigError(f"conditions: no column '{bad[0]}' in the fitted table")
        if cond.columns.duplicated().any():
            raise ConfigError(f"conditions: column '{cond.columns[cond.columns.duplicated()][0]}'"
                              f" is both fixed and rebalanced")
        ids = [c for c in cond.columns if self.types[c] == "id"]
        if ids:
            raise ConfigError(f"conditions: '{ids[0]}' is an id column (not modelled)")
        return cond

    def _rebalanced(self, c: str, shares: dict, n: int, rng) -> np.ndarray:
        col = next((x for x in self.codec.columns if c in x.names), None)
        if col is None or col.kind != "category" or len(col.names) > 1:
            raise ConfigError(f"rebalance: '{c}' is not a categorical column of the model")
        total = sum(shares.values())
        if any(v < 0 for v in shares.values()) or total > 1 + 1e-9:
            raise ConfigError(f"rebalance '{c}': shares must be ≥ 0 and sum to ≤ 1")
        unknown = [k for k in shares if k not in col.values]
        if unknown:
            raise ConfigError(f"rebalance '{c}': category {unknown[0]!r} is not a (frequent) "
                              f"category of the column")
        others = [v for v in col.values if v not in shares]
        freq = dict(zip(col.values, col.counts, strict=True))
        rest = np.array([freq[v] for v in others], float)
        p = list(shares.values()) + list((1 - total) * rest / rest.sum() if rest.sum() else
                                         [0.0] * len(others))
        values = list(shares) + others
        p = np.asarray(p, float)
        p = p / p.sum()
        return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=p)]

    def _draw(self, n: int, cond: pd.DataFrame | None, rng, temperature) -> pd.DataFrame:
        fixed = self._condition_tokens(cond, n) if cond is not None else {}
        tokens = self._draw_tokens(n, fixed, rng, temperature)
        values = self.codec.decode(tokens, rng)
        if self.params["rare"] == "mask":
            for col in self.codec.columns:
                if col.rare_pool:
                    j = self.codec.columns.index(col)
                    hit = tokens[:, j] == len(col.values)
                    for name in col.names:
                        values[name] = values[name].where(~hit, RARE)
        if cond is not None:  # fixed columns come out exactly as given
            for c in cond.columns:
                values[c] = cond[c].reset_index(drop=True)
        frame = {}
        for c in self.columns:
            if self.types[c] == "id":
                frame[c] = pd.Series([f"syn-{i}" for i in range(n)], dtype=object)
            else:
                frame[c] = values[c]
        return _restore_dtypes(pd.DataFrame(frame), self.types, self.dtypes)


def _restore_dtypes(df: pd.DataFrame, types: dict[str, str], dtypes: dict) -> pd.DataFrame:
    for c, t in types.items():
        s = df[c]
        want = dtypes[c]
        if t == "numerical":
            s = pd.to_numeric(s, errors="coerce")
            if pd.api.types.is_integer_dtype(want) and not s.isna().any():
                s = s.round().astype(want)
            elif pd.api.types.is_float_dtype(want):
                s = s.astype(want)
        elif t == "boolean":
            s = s.astype(object if s.isna().any() else bool)
        elif t == "categorical" and not pd.api.types.is_object_dtype(want) and \
                not isinstance(want, pd.CategoricalDtype):
            with contextlib.suppress(TypeError, ValueError):
                s = s.astype(want)
        df[c] = s
    return df
