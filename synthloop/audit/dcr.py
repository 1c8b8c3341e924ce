"""Distance to closest record (DCR) with a nearest-neighbour index, exact.

The distance is SDMetrics' (``sdmetrics.single_table.privacy.dcr_utils.calculate_dcr``): the
mean over columns of a per-column distance — numerical/datetime ``min(|x - y| / range, 1)``
with the range taken on the reference data (``x != y`` where the range is 0), categorical
``x != y``; a missing value against a present one counts 1, two missing values count 0.
SDMetrics computes it with a cross join (quadratic time and memory). We embed rows so that the
L1 distance between embeddings is a lower bound of that distance and exactly equal to it for the
common case (numerical values inside the reference range, no missing values, categoricals with
at most ``MAX_ONE_HOT`` values), search a KD-tree on the embeddings, and re-rank with the exact
distance only where the bound may be loose: any reference row closer than the current k-th
exact distance must lie within that radius under the bound, so one radius query per such row
makes the answer exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.neighbors import KDTree

MAX_ONE_HOT = 64


@dataclass
class DistanceSpace:
    """How rows are compared: which columns, their ranges on the reference, category codes."""

    numeric: list[str]
    categorical: list[str]
    lo: np.ndarray
    span: np.ndarray
    categories: dict[str, dict]

    @property
    def n_columns(self) -> int:
        return len(self.numeric) + len(self.categorical)

    @classmethod
    def fit(cls, reference: pd.DataFrame, numeric: list[str], categorical: list[str],
            others: list[pd.DataFrame] = ()) -> DistanceSpace:
        ref_num = _numeric_block(reference, numeric)
        with np.errstate(invalid="ignore"):
            lo = np.nanmin(ref_num, axis=0) if len(ref_num) else np.zeros(len(numeric))
            hi = np.nanmax(ref_num, axis=0) if len(ref_num) else np.zeros(len(numeric))
        cats = {}
        for c in categorical:
            values = pd.concat([reference[c], *[o[c] for o in others]]).dropna().unique()
            cats[c] = {v: i for i, v in enumerate(values)}
        return cls(numeric, categorical, lo, hi - lo, cats)

    def encode(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(numeric values, NaN kept) and (category codes, -1 for missing)."""
        num = _numeric_block(df, self.numeric)
        cat = np.empty((len(df), len(self.categorical)), dtype=np.int64)
        for j, c in enumerate(self.categorical):
            cat[:, j] = df[c].map(self.categories[c]).fillna(-1).to_numpy(dtype=np.int64) \
                if len(df) else np.zeros(0, np.int64)
        return num, cat


def _numeric_block(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    out = np.empty((len(df), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            v = s.astype("int64").to_numpy(dtype=np.float64) / 1e9
            v[s.isna().to_numpy()] = np.nan
        elif pd.api.types.is_timedelta64_dtype(s):
            v = s.dt.total_seconds().to_numpy(dtype=np.float64)
        else:
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
        out[:, j] = v
    return out


def exact_distances(space: DistanceSpace, q_num: np.ndarray, q_cat: np.ndarray,
                    r_num: np.ndarray, r_cat: np.ndarray) -> np.ndarray:
    """SDMetrics' DCR distance between one query row and many reference rows."""
    total = np.zeros(len(r_num))
    if space.numeric:
        diff = np.abs(r_num - q_num[None, :])
        span = space.span[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(span == 0, (diff > 0).astype(float), np.minimum(diff / span, 1.0))
        qn = np.isnan(q_num)[None, :]
        rn = np.isnan(r_num)
        d = np.where(qn ^ rn, 1.0, d)
        d = np.where(qn & rn, 0.0, d)
        total += d.sum(axis=1)
    if space.categorical:
        total += (r_cat != q_cat[None, :]).sum(axis=1)
    return total / space.n_columns


def _embed(space: DistanceSpace, num: np.ndarray, cat: np.ndarray,
           nan_cols: np.ndarray, onehot_cols: list[int]) -> np.ndarray:
    parts = []
    if space.numeric:
        span = np.where(space.span > 0, space.span, 1.0)
        v = np.clip((num - space.lo) / span, 0.0, 1.0)
        const = space.span == 0
        v[:, const] = (num[:, const] != space.lo[const]).astype(float)
        missing = np.isnan(num)
        v[missing] = 0.5
        parts.append(v)
        if nan_cols.any():
            parts.append(0.5 * missing[:, nan_cols].astype(float))
    for j in onehot_cols:
        k = len(space.categories[space.categorical[j]]) + 1
        oh = np.zeros((len(cat), k))
        oh[np.arange(len(cat)), cat[:, j] + 1] = 0.5
        parts.append(oh)
    if not parts:
        return np.zeros((len(num), 1))
    return np.hstack(parts)


def _chunks(n: int, parts: int) -> list[slice]:
    step = max(1, -(-n // parts))
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


def nearest_records(space: DistanceSpace, query: pd.DataFrame, reference: pd.DataFrame, *,
                    k: int = 1, n_jobs: int = 2) -> np.ndarray:
    """Exact distances from each query row to its ``k`` nearest reference rows (n_query × k,
    ascending), under SDMetrics' DCR distance in ``space``. Queries run in ``n_jobs`` threads."""
    qn, qc = space.encode(query)
    rn, rc = space.encode(reference)
    k = min(k, len(reference))
    if space.numeric:
        nan_cols = np.isnan(rn).any(axis=0) | np.isnan(qn).any(axis=0)
    else:
        nan_cols = np.zeros(0, bool)
    onehot = [j for j, c in enumerate(space.categorical)
              if len(space.categories[c]) + 1 <= MAX_ONE_HOT]
    hi = space.lo + space.span

    def outside(x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return ((x < space.lo) | (x > hi)).any(axis=1)

    # the bound is exact unless: a categorical is left out of the embedding, missing numeric
    # values exist, or a reference value lies outside the space's range
    loose_all = (len(onehot) < len(space.categorical) or bool(nan_cols.any())
                 or (space.numeric and bool(outside(rn).any())))
    emb_r = _embed(space, rn, rc, nan_cols, onehot)
    emb_q = _embed(space, qn, qc, nan_cols, onehot)
    tree = KDTree(emb_r, metric="manhattan")
    parts = _chunks(len(emb_q), n_jobs)
    pool = Parallel(n_jobs=n_jobs, prefer="threads")
    idx = np.vstack(pool(delayed(lambda sl: tree.query(emb_q[sl], k=k)[1])(sl) for sl in parts))
    out = np.empty((len(query), k))
    if loose_all:
        loose = np.ones(len(query), dtype=bool)
    else:
        loose = outside(qn) if space.numeric else np.zeros(len(query), dtype=bool)
    ti = np.flatnonzero(~loose)
    if len(ti):
        d = np.abs(emb_q[ti, None, :] - emb_r[idx[ti]]).sum(axis=2) / space.n_columns
        out[ti] = np.sort(d, axis=1)
    li = np.flatnonzero(loose)
    if len(li):
        kth = np.array([np.sort(exact_distances(space, qn[i], qc[i], rn[idx[i]],
                                                rc[idx[i]]))[k - 1] for i in li])
        radius = kth * space.n_columns + 1e-9

        def refine(sl: slice) -> list[np.ndarray]:
            rows = li[sl]
            cands = tree.query_radius(emb_q[rows], r=radius[sl])
            return [np.sort(exact_distances(space, qn[i], qc[i], rn[c], rc[c]))[:k]
                    for i, c in zip(rows, cands, strict=True)]

        res = pool(delayed(refine)(sl) for sl in _chunks(len(li), n_jobs))
        out[li] = np.vstack([r for chunk in res for r in chunk])
    return out
