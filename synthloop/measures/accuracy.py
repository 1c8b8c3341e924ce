"""Binned accuracy of a table against a reference, with bins shared by both sides.

The accuracy of one column (or a pair, or a triple of columns) is
``1 − ½ Σ |p_ref(bin) − p_other(bin)|`` — one minus the total-variation distance between the
binned distributions, in [0, 1] — the measure mostlyai-qa reports and MOSTLY AI's published
charts use. What makes it comparable across sides is that **the bins are fitted once, on the
reference (real training) data, and applied unchanged to every set compared with it**:

- numeric and datetime columns: ``n_bins`` quantile bins of the reference (duplicate edges
  merged); values outside the reference's range fall into the first or last bin;
- categorical and boolean columns: the reference's ``n_bins`` most frequent categories, every
  other value (also one the reference never had) in one ``other`` bin;
- missing values: their own bin.

Binning each side on its own range (as SDMetrics' ContingencySimilarity does) shifts the bins
of a fresh real sample and can rank a synthetic set above real held-out data; shared bins
cannot. ``id`` columns are not compared.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Column types binned by quantiles (the rest by their most frequent categories).
ORDERED_TYPES = ("numerical", "datetime")


@dataclass(frozen=True)
class _ColumnBins:
    kind: str                       # "ordered" or "categories"
    edges: np.ndarray | None        # inner quantile edges (ordered)
    categories: pd.Index | None     # kept categories (categories)

    @property
    def size(self) -> int:
        """Bins, the ``other`` and missing bins included."""
        inner = len(self.edges) + 1 if self.kind == "ordered" else len(self.categories) + 1
        return inner + 1


def _numbers(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(s):
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert(None)
        v = s.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        v[s.isna().to_numpy()] = np.nan
        return v
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)


class SharedBins:
    """Bins fitted on a reference table, applied to any table with its columns.

    Args:
        reference: the real (training) table the bins are fitted on.
        types: column → sdtype (``numerical``, ``datetime``, ``categorical``, ``boolean``,
            ``id``); ``id`` columns are left out.
        n_bins: quantile bins per numeric column and categories kept per categorical one
            (≥ 2; mostlyai-qa uses 10).
    """

    def __init__(self, reference: pd.DataFrame, types: dict[str, str], n_bins: int = 10):
        if n_bins < 2:
            raise ValueError(f"n_bins must be ≥ 2, got {n_bins}")
        self.columns = [c for c, t in types.items() if t != "id"]
        self._bins: dict[str, _ColumnBins] = {}
        for c in self.columns:
            if types[c] in ORDERED_TYPES:
                v = _numbers(reference[c])
                v = v[~np.isnan(v)]
                qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]) if len(v) else []
                self._bins[c] = _ColumnBins("ordered", np.unique(np.asarray(qs, float)), None)
            else:
                counts = reference[c].dropna().astype(str).value_counts(sort=False)
                # most frequent first, ties by value: the same bins whatever the row order
                ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n_bins]
                self._bins[c] = _ColumnBins("categories", None,
                                            pd.Index([k for k, _ in ranked]))

    def codes(self, df: pd.DataFrame) -> dict[str, np.ndarray]:
        """Bin number of every value of each compared column (int64, 0 .. size-1; the last
        code is the missing bin)."""
        out = {}
        for c in self.columns:
            b = self._bins[c]
            missing = df[c].isna().to_numpy()
            if b.kind == "ordered":
                code = np.searchsorted(b.edges, _numbers(df[c]), side="right")
            else:
                idx = b.categories.get_indexer(df[c].astype(str))
                code = np.where(idx < 0, len(b.categories), idx)
            out[c] = np.where(missing, b.size - 1, code).astype(np.int64)
        return out

    def size(self, column: str) -> int:
        return self._bins[column].size


def _accuracy(ref: Sequence[np.ndarray], other: Sequence[np.ndarray],
              sizes: Sequence[int]) -> float:
    """1 − TVD between the joint bin frequencies of ``ref`` and ``other``."""
    key_r = np.zeros(len(ref[0]), dtype=np.int64)
    key_o = np.zeros(len(other[0]), dtype=np.int64)
    for r, o, k in zip(ref, other, sizes, strict=True):
        key_r = key_r * k + r
        key_o = key_o * k + o
    cells = math.prod(sizes)
    p = np.bincount(key_r, minlength=cells) / len(key_r)
    q = np.bincount(key_o, minlength=cells) / len(key_o)
    return float(1 - 0.5 * np.abs(p - q).sum())


def binned_accuracy(reference: pd.DataFrame, other: pd.DataFrame, types: dict[str, str], *,
                    n_bins: int = 10, max_triples: int = 1000, seed: int = 0,
                    bins: SharedBins | None = None) -> dict:
    """Univariate, bivariate and trivariate binned accuracy of ``other`` against
    ``reference``, on bins fitted to ``reference`` (see the module docstring).

    Returns ``{"univariate", "bivariate", "trivariate", "overall"}`` (means over columns,
    pairs and triples; NaN where there are too few columns; ``overall`` is the mean of the
    available three), ``columns`` ({column: accuracy}) and ``pairs`` ([[a, b, accuracy]]).
    Triples beyond ``max_triples`` are a seeded sample of them. Pass ``bins`` to reuse bins
    fitted once (the audit compares the synthetic set and the holdout on the same bins).
    """
    bins = bins or SharedBins(reference, types, n_bins)
    cols = bins.columns
    cr, co = bins.codes(reference), bins.codes(other)
    sizes = {c: bins.size(c) for c in cols}
    uni = {c: _accuracy([cr[c]], [co[c]], [sizes[c]]) for c in cols}
    pairs = [[a, b, _accuracy([cr[a], cr[b]], [co[a], co[b]], [sizes[a], sizes[b]])]
             for a, b in itertools.combinations(cols, 2)]
    triples = list(itertools.combinations(cols, 3))
    if len(triples) > max_triples:
        pick = np.random.default_rng(seed).choice(len(triples), max_triples, replace=False)
        triples = [triples[i] for i in np.sort(pick)]
    tri = [_accuracy([cr[c] for c in t], [co[c] for c in t], [sizes[c] for c in t])
           for t in triples]

    def mean(v) -> float:
        return float(np.mean(v)) if len(v) else float("nan")

    parts = {"univariate": mean(list(uni.values())), "bivariate": mean([p[2] for p in pairs]),
             "trivariate": mean(tri)}
    present = [v for v in parts.values() if not math.isnan(v)]
    return {**parts, "overall": mean(present), "columns": uni, "pairs": pairs,
            "triples_scored": len(tri), "triples_total": math.comb(len(cols), 3)}
