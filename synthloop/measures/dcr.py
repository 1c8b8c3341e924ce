"""Distance to closest record (DCR), exact, without a cross join.

The distance is SDMetrics' (``sdmetrics.single_table.privacy.dcr_utils.calculate_dcr``): the
mean over columns of a per-column distance — numerical/datetime ``min(|x - y| / range, 1)``
with the range taken on the reference data (``x != y`` where the range is 0), categorical
``x != y``; a missing value against a present one counts 1, two missing values count 0.
SDMetrics computes it with a cross join (quadratic time and memory).

We group the reference rows by their *key*: the categorical values plus the pattern of missing
numerical values. Between a query and a group, every key position that differs adds exactly 1
(a categorical mismatch, or a value missing on one side only), so the distance to any row of
the group is ``mismatches + L1 over the numerical columns present on both sides``. Groups are
visited in order of mismatches, and a group is skipped as soon as its mismatch count alone is
no smaller than the current k-th best distance — for most queries only the query's own group
is searched, with a KD-tree over its (few) numerical columns. Values outside the reference
range are clipped for the tree search (a lower bound), and re-ranked exactly with one radius
query, so the result equals the cross join's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.neighbors import KDTree

#: groups smaller than this are searched by brute force instead of a tree
MIN_TREE_ROWS = 64


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
        ref_num = numeric_block(reference, numeric)
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
        num = numeric_block(df, self.numeric)
        cat = np.empty((len(df), len(self.categorical)), dtype=np.int64)
        for j, c in enumerate(self.categorical):
            cat[:, j] = df[c].map(self.categories[c]).fillna(-1).to_numpy(dtype=np.int64) \
                if len(df) else np.zeros(0, np.int64)
        return num, cat


def numeric_block(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Columns ``cols`` as float64 (rows × columns): datetimes as Unix seconds, timedeltas as
    seconds, anything else ``pd.to_numeric`` (unparseable → NaN); missing → NaN."""
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


def _scaled(space: DistanceSpace, num: np.ndarray) -> np.ndarray:
    """Numerical values in units of the reference range (constant columns: 0/1 for equal or
    not to the constant); NaN stays NaN."""
    span = np.where(space.span > 0, space.span, 1.0)
    v = (num - space.lo) / span
    const = space.span == 0
    v[:, const] = np.where(np.isnan(num[:, const]), np.nan,
                           (num[:, const] != space.lo[const]).astype(float))
    return v


def _keys(cat: np.ndarray, num: np.ndarray) -> np.ndarray:
    return np.hstack([cat, np.isnan(num).astype(np.int64)]) if num.size or cat.size \
        else np.zeros((len(num), 0), np.int64)


@dataclass
class _Group:
    rows: np.ndarray  # reference row indices
    present: np.ndarray  # numerical columns present in this group (bool)
    values: np.ndarray  # rows × present columns, scaled
    tree: KDTree | None


def _merge(best_d: np.ndarray, best_i: np.ndarray, d: np.ndarray, i: np.ndarray, k: int):
    if k == 1:  # the common case, without sorting
        better = d[:, 0] < best_d[:, 0]
        return (np.where(better[:, None], d, best_d), np.where(better[:, None], i, best_i))
    all_d = np.hstack([best_d, d])
    all_i = np.hstack([best_i, i])
    order = np.argsort(all_d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_d, order, 1), np.take_along_axis(all_i, order, 1)


def _brute_rows(q: np.ndarray, r: np.ndarray, offset: np.ndarray, ids: np.ndarray,
                q_present: np.ndarray, k: int, chunk: int = 4_000_000
                ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest among reference rows ``r`` (scaled, NaN kept) with per-row mismatch
    ``offset``: numerical columns present on both sides add ``min(|x - y|, 1)``; a column
    missing on either side is already counted in the offset (or is missing on both)."""
    cols = np.flatnonzero(q_present)
    qq, rr = q[:, cols], r[:, cols]
    kk = min(k, len(r))
    out_d = np.empty((len(q), kk))
    out_i = np.empty((len(q), kk), dtype=np.int64)
    step = max(1, chunk // max(1, len(r) * max(1, len(cols))))
    for s in range(0, len(q), step):
        with np.errstate(invalid="ignore"):
            d = np.nansum(np.minimum(np.abs(qq[s:s + step, None, :] - rr[None, :, :]), 1.0),
                          axis=2) + offset[None, :]
        if kk == 1:
            j = d.argmin(axis=1)
            out_d[s:s + step, 0] = d[np.arange(len(d)), j]
            out_i[s:s + step, 0] = ids[j]
            continue
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < d.shape[1] else \
            np.tile(np.arange(d.shape[1]), (len(d), 1))
        dd = np.take_along_axis(d, part, 1)
        o = np.argsort(dd, axis=1, kind="stable")
        out_d[s:s + step] = np.take_along_axis(dd, o, 1)
        out_i[s:s + step] = ids[np.take_along_axis(part, o, 1)]
    if kk < k:
        out_d = np.hstack([out_d, np.full((len(q), k - kk), np.inf)])
        out_i = np.hstack([out_i, np.full((len(q), k - kk), -1)])
    return out_d, out_i


def _search_own_group(q: np.ndarray, g: _Group, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest in the query's own key group (no mismatches), exact: a tree search on
    clipped values, then a radius re-rank for queries with values outside the range."""
    if g.tree is None:
        return _brute_rows(q[:, g.present], g.values, np.zeros(len(g.rows)), g.rows,
                           np.ones(int(g.present.sum()), dtype=bool), k)
    qq = q[:, g.present]
    clipped = np.clip(qq, 0.0, 1.0)
    kk = min(k, len(g.rows))
    d, idx = g.tree.query(clipped, k=kk)
    outside = np.flatnonzero((qq != clipped).any(axis=1))
    for j in outside:
        exact = np.minimum(np.abs(g.values[idx[j]] - qq[j]), 1.0).sum(axis=1)
        radius = np.sort(exact)[-1] + 1e-12
        cand = g.tree.query_radius(clipped[j:j + 1], r=radius)[0]
        ex = np.minimum(np.abs(g.values[cand] - qq[j]), 1.0).sum(axis=1)
        o = np.argsort(ex, kind="stable")[:kk]
        d[j], idx[j] = ex[o], cand[o]
    return d, g.rows[idx]


def nearest_records(space: DistanceSpace, query: pd.DataFrame, reference: pd.DataFrame, *,
                    k: int = 1, n_jobs: int = 2) -> np.ndarray:
    """Exact distances from each query row to its ``k`` nearest reference rows (n_query × k,
    ascending), under SDMetrics' DCR distance in ``space``. Query groups run in ``n_jobs``
    threads."""
    return nearest_neighbours(space, query, reference, k=k, n_jobs=n_jobs)[0]


def nearest_neighbours(space: DistanceSpace, query: pd.DataFrame, reference: pd.DataFrame, *,
                       k: int = 1, n_jobs: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_records` with the neighbours: ``(distances, positions)``, both
    n_query × k, positions into ``reference`` (rows in order; among equal distances the
    lower position first is not guaranteed, but the same inputs give the same positions)."""
    qn, qc = space.encode(query)
    rn, rc = space.encode(reference)
    k = min(k, len(reference))
    n_cols = space.n_columns
    rv, qv = _scaled(space, rn), _scaled(space, qn)
    ref_keys, ref_group = np.unique(_keys(rc, rn), axis=0, return_inverse=True)
    ref_group = ref_group.ravel()
    order = np.argsort(ref_group, kind="stable")
    bounds = np.searchsorted(ref_group[order], np.arange(len(ref_keys) + 1))
    n_cat = rc.shape[1]
    groups = []
    for g in range(len(ref_keys)):
        rows = order[bounds[g]:bounds[g + 1]]
        present = ref_keys[g, n_cat:] == 0
        values = rv[np.ix_(rows, np.flatnonzero(present))]
        # a tree needs values inside [0, 1]: true for the reference the space was fitted on
        in_range = values.size == 0 or (values.min() >= 0 and values.max() <= 1)
        tree = KDTree(values, metric="manhattan") \
            if len(rows) >= MIN_TREE_ROWS and present.any() and in_range else None
        groups.append(_Group(rows, present, values, tree))
    q_keys, q_group = np.unique(_keys(qc, qn), axis=0, return_inverse=True)
    q_group = q_group.ravel()
    q_order = np.argsort(q_group, kind="stable")
    q_bounds = np.searchsorted(q_group[q_order], np.arange(len(q_keys) + 1))

    def solve(key_ids: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        results = []
        for key_id in key_ids:
            rows_q = q_order[q_bounds[key_id]:q_bounds[key_id + 1]]
            key = q_keys[key_id]
            q = qv[rows_q]
            mism = (ref_keys != key).sum(axis=1)
            best_d = np.full((len(rows_q), k), np.inf)
            best_i = np.full((len(rows_q), k), -1, dtype=np.int64)
            own = np.flatnonzero(mism == 0)
            if len(own):
                d, i = _search_own_group(q, groups[own[0]], k)
                if d.shape[1] < k:
                    pad = k - d.shape[1]
                    d = np.hstack([d, np.full((len(d), pad), np.inf)])
                    i = np.hstack([i, np.full((len(i), pad), -1)])
                best_d, best_i = _merge(best_d, best_i, d, i, k)
            # other groups, level by level: every key mismatch adds exactly 1, so a level m
            # matters only to queries whose k-th distance is still above m; each level's rows
            # are searched in one vectorised pass
            q_present = key[n_cat:] == 0
            for m in np.unique(mism[mism > 0]):
                active = np.flatnonzero(best_d[:, -1] > m)
                if not len(active):
                    break
                cand = np.concatenate([groups[g].rows for g in np.flatnonzero(mism == m)])
                d, i = _brute_rows(q[active], rv[cand], np.full(len(cand), float(m)), cand,
                                   q_present, k)
                best_d[active], best_i[active] = _merge(best_d[active], best_i[active], d, i, k)
            results.append((rows_q, best_d, best_i))
        return results

    key_ids = np.arange(len(q_keys))
    if len(query) < 50_000:  # below this the GIL-bound bookkeeping makes threads a loss
        n_jobs = 1
    # spread query groups over threads, biggest first
    sizes = np.bincount(q_group, minlength=len(q_keys))
    key_ids = key_ids[np.argsort(-sizes, kind="stable")]
    shards = [key_ids[j::n_jobs] for j in range(n_jobs)]
    out = np.empty((len(query), k))
    pos = np.empty((len(query), k), dtype=np.int64)
    for part in Parallel(n_jobs=n_jobs, prefer="threads")(delayed(solve)(sh) for sh in shards):
        for rows_q, d, i in part:
            out[rows_q] = d / n_cols
            pos[rows_q] = i
    return out, pos
