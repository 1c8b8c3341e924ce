"""The table audit: column shapes, column-pair trends, detection, utility and privacy.

Column shapes and column-pair trends are defined exactly as SDMetrics' ``QualityReport``
defines them (KSComplement / TVComplement; CorrelationSimilarity (Pearson) /
ContingencySimilarity with continuous columns cut into ``np.histogram_bin_edges`` bins computed
separately on each side), so scores agree with SDMetrics on the same data; they are computed on
integer codes with ``np.bincount`` instead of a pandas ``groupby`` per pair, which is where the
speed comes from (benchmarks/bench_audit_table.py).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import Field

from synthloop.audit.base import (
    MetricResult,
    holdout_indices,
    ks_statistic,
    relative_score,
    stage_reporter,
)
from synthloop.configs import Config
from synthloop.errors import ConfigError, InputError
from synthloop.measures.accuracy import SharedBins, binned_accuracy
from synthloop.measures.attacks import (
    inference_risk,
    linkability_risk,
    membership_auc,
    singling_out_risk,
)
from synthloop.measures.columns import as_datetimes, infer_column_types
from synthloop.measures.dcr import DistanceSpace, nearest_records
from synthloop.measures.threads import one_openmp_thread
from synthloop.progress import Progress

_CONTINUOUS = ("numerical", "datetime")
MAX_DECIMALS = 14  # SDMetrics rounds before its KS test


class TableAuditConfig(Config):
    """Parameters of the table audit.

    Attributes:
        seed: seeds the holdout split, the detection/TSTR samples and models.
        holdout_fraction: share of the real rows split off as holdout when none is given.
        column_types: sdtype per column (``numerical``, ``datetime``, ``categorical``,
            ``boolean``, ``id``) overriding inference; ``id`` columns are not compared.
        target: a column to predict for train-synthetic-test-real utility (None to skip).
        detection_rows: rows per side for the detection classifier (seeded sample).
        tstr_repeats: real samples the utility baseline is averaged over (its spread sets
            the utility warning's margin).
        privacy: compute DCR-based privacy metrics.
        attacks: with ``privacy``, run the attack-based privacy risks too (singling out,
            linkability, attribute inference, membership inference;
            :mod:`synthloop.measures.attacks`).
        attack_rows: targets per side for each attack (seeded sample).
        n_jobs: threads for nearest-neighbour queries.
    """

    seed: int = 0
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    column_types: dict[str, str] = Field(default_factory=dict)
    target: str | None = None
    detection_rows: int = Field(20_000, ge=10)
    tstr_repeats: int = Field(5, ge=1)
    privacy: bool = True
    attacks: bool = True
    attack_rows: int = Field(1000, ge=10)
    n_jobs: int = Field(2, ge=1)


@dataclass
class TableAuditData:
    """What the report plots, besides the metrics."""

    column_types: dict[str, str] = field(default_factory=dict)
    shapes: list[dict] = field(default_factory=list)
    pairs: dict[str, list] = field(default_factory=dict)
    marginals: dict[str, dict] = field(default_factory=dict)
    correlations: dict[str, list] = field(default_factory=dict)
    accuracy: dict[str, object] = field(default_factory=dict)
    dcr: dict[str, list[float]] = field(default_factory=dict)
    attacks: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    sampling: dict[str, object] = field(default_factory=dict)


def check_schema(real: pd.DataFrame, other: pd.DataFrame, name: str) -> pd.DataFrame:
    """Same columns as ``real`` (order aligned) and compatible kinds, or one clear error."""
    missing = [c for c in real.columns if c not in other.columns]
    if missing:
        raise InputError(f"{name}: missing column '{missing[0]}' that the real data has")
    extra = [c for c in other.columns if c not in real.columns]
    if extra:
        raise InputError(f"{name}: column '{extra[0]}' is not in the real data")
    other = other[list(real.columns)]
    for c in real.columns:
        r, o = real[c], other[c]
        if r.isna().all() or o.isna().all():
            continue
        r_num = pd.api.types.is_numeric_dtype(r) and not pd.api.types.is_bool_dtype(r)
        o_num = pd.api.types.is_numeric_dtype(o) and not pd.api.types.is_bool_dtype(o)
        if r_num != o_num:
            raise InputError(f"{name}: column '{c}' is {o.dtype} but {r.dtype} in the real data")
    return other


# --- column shapes ---------------------------------------------------------------------------

def _as_numeric(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        out = pd.Series(s.astype("int64"), index=s.index, dtype="float64")
        out[s.isna()] = np.nan
        return out
    return pd.to_numeric(s, errors="coerce").astype("float64")


def ks_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - KS statistic of the non-missing values (SDMetrics KSComplement); NaN if a side is
    empty."""
    r = np.round(_as_numeric(real).to_numpy(), MAX_DECIMALS)
    s = np.round(_as_numeric(synthetic).to_numpy(), MAX_DECIMALS)
    r, s = r[~np.isnan(r)], s[~np.isnan(s)]
    if not len(r) or not len(s):
        return float("nan")
    return float(1 - ks_statistic(r, s))


def _shared_codes(real: pd.Series, synthetic: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Category codes shared by both sides (missing → -1) and the number of categories."""
    codes, uniques = pd.factorize(pd.concat([real, synthetic], ignore_index=True),
                                  use_na_sentinel=True)
    return codes[:len(real)], codes[len(real):], len(uniques)


def tv_complement(real: pd.Series, synthetic: pd.Series) -> float:
    """1 - total variation distance of category frequencies, missing values dropped
    (SDMetrics TVComplement, including its 1e-6 count for synthetic-only categories)."""
    cr, cs, k = _shared_codes(real, synthetic)
    r = np.bincount(cr[cr >= 0], minlength=k).astype(float)
    sc = np.bincount(cs[cs >= 0], minlength=k).astype(float)
    if r.sum() == 0 or sc.sum() == 0:
        return float("nan")
    seen = (r > 0) | (sc > 0)
    r = np.where((r == 0) & (sc > 0), 1e-6, r)[seen]
    f_exp = r / r.sum()
    f_obs = sc[seen] / sc.sum()
    return float(1 - 0.5 * np.abs(f_obs - f_exp).sum())


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, types: dict[str, str]
                  ) -> list[dict]:
    """Per-column shape score: KSComplement for numerical/datetime, TVComplement for
    categorical/boolean; ``id`` columns skipped."""
    rows = []
    for c, t in types.items():
        if t == "id":
            continue
        if t in _CONTINUOUS:
            rows.append({"column": c, "metric": "KSComplement",
                         "score": ks_complement(real[c], synthetic[c])})
        else:
            rows.append({"column": c, "metric": "TVComplement",
                         "score": tv_complement(real[c], synthetic[c])})
    return rows


# --- column-pair trends ----------------------------------------------------------------------

def _bin_codes(s: pd.Series) -> np.ndarray:
    """``np.digitize`` bin numbers over the column's own ``np.histogram_bin_edges`` (missing →
    11, as np.digitize puts NaN past the last edge)."""
    v = _as_numeric(s).to_numpy()
    finite = v[~np.isnan(v)]
    edges = np.histogram_bin_edges(finite) if len(finite) else np.linspace(0, 1, 11)
    return np.digitize(v, bins=edges).astype(np.int64)


def _pair_codes(real: pd.DataFrame, synthetic: pd.DataFrame, types: dict[str, str]
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Integer codes per compared column for both sides: continuous columns binned per side
    (as SDMetrics does), discrete columns as category codes shared by both sides, missing as
    its own code."""
    codes_r, codes_s = {}, {}
    for c, t in types.items():
        if t == "id":
            continue
        if t in _CONTINUOUS:
            codes_r[c], codes_s[c] = _bin_codes(real[c]), _bin_codes(synthetic[c])
        else:
            cr, cs, k = _shared_codes(real[c], synthetic[c])
            codes_r[c] = np.where(cr < 0, k, cr).astype(np.int64)
            codes_s[c] = np.where(cs < 0, k, cs).astype(np.int64)
    return codes_r, codes_s


def _cramers_v(table: np.ndarray) -> float:
    """Cramér's V without continuity correction (scipy.stats.contingency.association)."""
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))


def _contingency_similarity(a_r: np.ndarray, b_r: np.ndarray, a_s: np.ndarray,
                            b_s: np.ndarray) -> tuple[float, float]:
    """(contingency similarity, Cramér's V of the real table)."""
    width = int(max(b_r.max(initial=0), b_s.max(initial=0))) + 1
    rows = int(max(a_r.max(initial=0), a_s.max(initial=0))) + 1
    counts_r = np.bincount(a_r * width + b_r, minlength=rows * width)
    pr = counts_r / len(a_r)
    ps = np.bincount(a_s * width + b_s, minlength=rows * width) / len(a_s)
    table = counts_r.reshape(rows, width)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.sum() == 0 or min(table.shape) < 2:
        assoc = float("nan")
    else:
        assoc = _cramers_v(table.astype(np.float64))
    return float(1 - 0.5 * np.abs(pr - ps).sum()), assoc


def _is_constant(s: pd.Series) -> bool:
    """Exactly one distinct non-missing value (SDMetrics' ``nunique() == 1``)."""
    v = _as_numeric(s).to_numpy()
    v = v[~np.isnan(v)]
    return bool(len(v)) and v.min() == v.max()


def _pearson_matrix(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Pearson correlation of every column pair over the rows where both are present (as
    ``pearsonr`` after ``dropna`` on the pair), from a few matrix products."""
    x = np.column_stack([_as_numeric(df[c]).to_numpy() for c in cols])
    present = ~np.isnan(x)
    # centre first: the sums below are then small and the one-pass formula stays accurate
    counts = present.sum(axis=0)
    means = np.where(present, x, 0.0).sum(axis=0) / np.maximum(counts, 1)
    x = np.where(present, x - means, 0.0)
    m = present.astype(np.float64)
    n = m.T @ m
    sx = x.T @ m  # sx[i, j]: sum of column i over rows where j is present too
    sxx = (x * x).T @ m
    sxy = x.T @ x
    cov = n * sxy - sx * sx.T
    var_i = n * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.sqrt(var_i * var_i.T)
    corr[n < 2] = np.nan
    return pd.DataFrame(np.clip(corr, -1, 1), index=cols, columns=cols)


def column_pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, types: dict[str, str], *,
                       real_correlation_threshold: float = 0.5,
                       real_association_threshold: float = 0.3) -> list[dict]:
    """Per-pair trend score, as SDMetrics' ColumnPairTrends: continuous × continuous →
    1 - |ρ_real - ρ_synthetic| / 2 (Pearson on rows where both are present; NaN if a column is
    constant); any discrete column → contingency similarity (continuous ones binned).

    As in SDMetrics' QualityReport (0.32), a pair counts towards the property score
    (``meets``) only where the real data shows a trend: |ρ_real| above
    ``real_correlation_threshold`` or Cramér's V above ``real_association_threshold``; set both
    to 0 to count every pair."""
    compared = [c for c, t in types.items() if t != "id"]
    codes_r, codes_s = _pair_codes(real, synthetic, types)
    cont = [c for c in compared if types[c] in _CONTINUOUS]
    corr_r = _pearson_matrix(real, cont) if cont else None
    corr_s = _pearson_matrix(synthetic, cont) if cont else None
    constant = {c for c in cont if _is_constant(real[c]) or _is_constant(synthetic[c])}
    rows = []
    for a, b in itertools.combinations(compared, 2):
        if types[a] in _CONTINUOUS and types[b] in _CONTINUOUS:
            if a in constant or b in constant:
                rows.append({"pair": (a, b), "metric": "CorrelationSimilarity",
                             "score": float("nan"), "real": float("nan"),
                             "synthetic": float("nan"), "meets": False})
                continue
            rr, ss = float(corr_r.at[a, b]), float(corr_s.at[a, b])
            score = 1 - abs(rr - ss) / 2 if not (math.isnan(rr) or math.isnan(ss)) \
                else float("nan")
            meets = not math.isnan(rr) and abs(rr) > real_correlation_threshold \
                if real_correlation_threshold > 0 else True
            rows.append({"pair": (a, b), "metric": "CorrelationSimilarity", "score": score,
                         "real": rr, "synthetic": ss, "meets": meets})
        else:
            score, assoc = _contingency_similarity(codes_r[a], codes_r[b], codes_s[a],
                                                   codes_s[b])
            meets = not math.isnan(assoc) and assoc > real_association_threshold \
                if real_association_threshold > 0 else True
            rows.append({"pair": (a, b), "metric": "ContingencySimilarity", "score": score,
                         "real_association": assoc, "meets": meets})
    return rows


def pair_trends_score(rows: list[dict]) -> float:
    """The property score: mean over the pairs that meet the real-trend threshold."""
    return _mean(r["score"] for r in rows if r["meets"])


def _mean(values) -> float:
    v = np.array([x for x in values if x is not None], dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


def quality_scores(real: pd.DataFrame, synthetic: pd.DataFrame, types: dict[str, str]
                   ) -> dict[str, float]:
    """SDMetrics-compatible Column Shapes, Column Pair Trends and their mean (the quality
    report's overall score)."""
    shapes = _mean(r["score"] for r in column_shapes(real, synthetic, types))
    pairs = pair_trends_score(column_pair_trends(real, synthetic, types))
    return {"column_shapes": shapes, "column_pair_trends": pairs,
            "overall": _mean([shapes, pairs])}


# --- detection and utility -------------------------------------------------------------------

def _features(frames: list[pd.DataFrame], types: dict[str, str]) -> tuple[list[np.ndarray],
                                                                          list[bool]]:
    """Numeric matrices for tree models: numbers as floats (NaN kept), categories as codes
    shared across frames (missing → NaN), ``id`` columns dropped."""
    # columns missing everywhere carry nothing to learn (and break histogram binning)
    cols = [c for c, t in types.items() if t != "id" and not all(f[c].isna().all()
                                                                 for f in frames)]
    out = [np.empty((len(f), len(cols))) for f in frames]
    is_cat = []
    for j, c in enumerate(cols):
        if types[c] in _CONTINUOUS:
            for f, m in zip(frames, out, strict=True):
                m[:, j] = _as_numeric(f[c]).to_numpy()
            is_cat.append(False)
        else:
            # codes by sorted value, not by first appearance: appearance order would give
            # the values only one frame has codes of their own range, which a tree separates
            values = pd.concat([f[c] for f in frames]).dropna().unique()
            cats = pd.Index(sorted(values, key=lambda v: (type(v).__name__, str(v))))
            # HistGradientBoosting takes at most 255 categories; beyond that use codes as numbers
            is_cat.append(len(cats) <= 250)
            for f, m in zip(frames, out, strict=True):
                code = cats.get_indexer(f[c]).astype(float)
                code[code < 0] = np.nan
                m[:, j] = code
    return out, is_cat


def detection_auc(a: pd.DataFrame, b: pd.DataFrame, types: dict[str, str], *, seed: int,
                  max_rows: int) -> dict[str, float]:
    """How well a gradient-boosted classifier tells ``b`` rows from ``a`` rows: 5-fold
    cross-validated ROC AUC (0.5 = indistinguishable) and accuracy (C2ST), on a seeded, balanced
    sample of at most ``max_rows`` rows per side."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n = min(len(a), len(b), max_rows)
    rng = np.random.default_rng(seed)
    a = a.iloc[np.sort(rng.choice(len(a), n, replace=False))]
    b = b.iloc[np.sort(rng.choice(len(b), n, replace=False))]
    (xa, xb), is_cat = _features([a, b], types)
    x = np.vstack([xa, xb])
    y = np.r_[np.zeros(n), np.ones(n)]
    clf = HistGradientBoostingClassifier(max_iter=100, categorical_features=np.array(is_cat),
                                         random_state=seed)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    with one_openmp_thread():
        proba = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")[:, 1]
    from sklearn.metrics import roc_auc_score

    return {"auc": float(roc_auc_score(y, proba)),
            "accuracy": float(((proba > 0.5) == y).mean()), "rows_per_side": n}


def tstr(train_on: pd.DataFrame, test_on: pd.DataFrame, target: str, types: dict[str, str], *,
         seed: int) -> float:
    """Train on ``train_on``, test on ``test_on``: macro F1 for a discrete target, R² for a
    continuous one (gradient-boosted trees, fixed seed)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, r2_score

    train_on = train_on[train_on[target].notna()]
    test_on = test_on[test_on[target].notna()]
    if len(train_on) < 2:  # a set without the target teaches nothing (a constant's R² is 0)
        return 0.0
    # a feature the training side never has (e.g. a column DP could not release) is no feature
    feats = {c: t for c, t in types.items() if c != target and train_on[c].notna().any()}
    (xtr, xte), is_cat = _features([train_on, test_on], feats)
    if types[target] in _CONTINUOUS:
        model = HistGradientBoostingRegressor(max_iter=200, categorical_features=np.array(is_cat),
                                              random_state=seed)
        with one_openmp_thread():
            model.fit(xtr, _as_numeric(train_on[target]).to_numpy())
            pred = model.predict(xte)
        return float(r2_score(_as_numeric(test_on[target]).to_numpy(), pred))
    ytr = train_on[target].astype(str).to_numpy()
    yte = test_on[target].astype(str).to_numpy()
    if len(np.unique(ytr)) < 2:
        return 0.0
    model = HistGradientBoostingClassifier(max_iter=200, categorical_features=np.array(is_cat),
                                           random_state=seed)
    with one_openmp_thread():
        model.fit(xtr, ytr)
        pred = model.predict(xte)
    return float(f1_score(yte, pred, average="macro"))


# --- the audit -------------------------------------------------------------------------------

def split_holdout_rows(real: pd.DataFrame, fraction: float, seed: int
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split of the real rows into (train, holdout)."""
    train, hold = holdout_indices(len(real), fraction, seed)
    return real.iloc[train].reset_index(drop=True), real.iloc[hold].reset_index(drop=True)


def _result(name: str, prop: str, value: float, baseline: float | None, direction: str,
            rng_: tuple[float, float], description: str, *, score: float | None = None,
            breakdown: dict | None = None, informational: bool = False) -> MetricResult:
    """A metric scored against its baseline, unless ``informational`` (reported, no score)."""
    if informational:
        score = None
    elif score is None and value is not None and not math.isnan(value):
        score = relative_score(value, baseline, direction)
        score = None if math.isnan(score) else score
    return MetricResult(name=name, prop=prop, value=value, baseline=baseline,
                        direction=direction, range=rng_, score=score, description=description,
                        breakdown=breakdown or {})


def _accuracy_metrics(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame,
                      types: dict[str, str], seed: int, data: TableAuditData
                      ) -> list[MetricResult]:
    """mostlyai-qa-style accuracy (1 − binned TVD) of the synthetic set and of the holdout
    against the real training rows, on bins fitted once to the training rows. The synthetic
    side is measured on samples of the holdout's size (the mean over up to 5 disjoint ones),
    so that both sides carry the same sampling noise."""
    bins = SharedBins(real, types)
    hold = binned_accuracy(real, holdout, types, bins=bins, seed=seed)
    n = min(len(holdout), len(synthetic))
    repeats = max(1, min(5, len(synthetic) // n))
    perm = np.random.default_rng(seed + 3).permutation(len(synthetic))
    runs = [binned_accuracy(real, synthetic.iloc[np.sort(perm[i * n:(i + 1) * n])], types,
                            bins=bins, seed=seed) for i in range(repeats)]
    syn = {k: float(np.mean([r[k] for r in runs]))
           for k in ("univariate", "bivariate", "trivariate", "overall")}
    data.accuracy = {"synthetic": syn, "holdout": {k: hold[k] for k in syn},
                     "rows_per_sample": n, "samples": repeats,
                     "triples_scored": hold["triples_scored"],
                     "triples_total": hold["triples_total"]}
    what = {"univariate": "columns", "bivariate": "column pairs", "trivariate": "column triples"}
    out = []
    for k, noun in what.items():
        if math.isnan(syn[k]):
            continue
        out.append(_result(
            f"accuracy_{k}", "fidelity", syn[k], hold[k], "higher", (0, 1),
            f"1 − total-variation distance of the binned {noun} (mostlyai-qa's accuracy; "
            f"bins fitted on the real training rows, shared by both sides)",
            breakdown={"rows_per_sample": n, "samples": repeats,
                       **({"triples_scored": hold["triples_scored"],
                           "triples_total": hold["triples_total"]} if k == "trivariate"
                          else {})}))
    return out


def audit_table(real: pd.DataFrame, synthetic: pd.DataFrame,
                holdout: pd.DataFrame | None = None, config: TableAuditConfig | None = None,
                progress: Progress | None = None
                ) -> tuple[list[MetricResult], TableAuditData]:
    """Run every table metric on (real, synthetic) and (real, holdout)."""
    cfg = config or TableAuditConfig()
    say = stage_reporter(progress)
    synthetic = check_schema(real, synthetic, "synthetic data").reset_index(drop=True)
    if holdout is None:
        real, holdout = split_holdout_rows(real, cfg.holdout_fraction, cfg.seed)
        split = f"holdout split off the real data: {len(holdout)} of {len(real) + len(holdout)}"
    else:
        holdout = check_schema(real, holdout, "holdout data").reset_index(drop=True)
        real = real.reset_index(drop=True)
        split = "holdout given"
    for name, df in (("real", real), ("synthetic", synthetic), ("holdout", holdout)):
        if len(df) < 2:
            raise InputError(f"{name} data: {len(df)} rows; the table audit needs at least 2")
    types = infer_column_types(real, cfg.column_types)
    conv = as_datetimes({"real": real, "synthetic": synthetic, "holdout": holdout}, types)
    real, synthetic, holdout = conv["real"], conv["synthetic"], conv["holdout"]
    if all(t == "id" for t in types.values()):
        raise InputError(f"real data: no column to compare (every column is identifier-like: "
                         f"{', '.join(types)}); for text data use kind 'text' and name its "
                         f"text field")
    data = TableAuditData(column_types=types, sampling={
        "holdout": split, "n_real": len(real), "n_holdout": len(holdout),
        "n_synthetic": len(synthetic), "seed": cfg.seed})
    for c, t in types.items():
        if t == "id":
            data.skipped[c] = "identifier-like (unique on almost every row): not compared"
        elif real[c].isna().all():
            data.skipped[c] = "all values missing in the real data: scores for it are NaN"
    if cfg.target is not None and cfg.target not in types:
        raise ConfigError(f"target column '{cfg.target}' is not in the data")
    metrics: list[MetricResult] = []

    say("column shapes")
    shapes = {k: column_shapes(real, df, types) for k, df in (("synthetic", synthetic),
                                                               ("holdout", holdout))}
    data.shapes = [{"column": s["column"], "metric": s["metric"], "synthetic": s["score"],
                    "holdout": h["score"]} for s, h in zip(shapes["synthetic"],
                                                           shapes["holdout"], strict=True)]
    v = {k: _mean(r["score"] for r in rows) for k, rows in shapes.items()}
    metrics.append(_result("column_shapes", "fidelity", v["synthetic"], v["holdout"], "higher",
                           (0, 1), "mean per-column KS / TV complement (as SDMetrics)",
                           breakdown={"columns": data.shapes}))
    say("column pair trends")
    pairs = {k: column_pair_trends(real, df, types) for k, df in (("synthetic", synthetic),
                                                                   ("holdout", holdout))}
    data.pairs = {k: [[*r["pair"], r["score"], r["meets"]] for r in rows]
                  for k, rows in pairs.items()}
    v = {k: pair_trends_score(rows) for k, rows in pairs.items()}
    # informational: SDMetrics bins each side on its own range, which shifts a fresh real
    # sample's bins and can rank synthetic data above real held-out data (the binned
    # accuracy below scores the pairs on shared bins)
    metrics.append(_result("column_pair_trends", "fidelity", v["synthetic"], v["holdout"],
                           "higher", (0, 1), "mean correlation / contingency similarity of "
                           "the column pairs with a real trend (SDMetrics-equal, for "
                           "comparison; not scored: bins per side)",
                           informational=True,
                           breakdown={"pairs": len(pairs["synthetic"]),
                                      "pairs_scored": sum(r["meets"]
                                                          for r in pairs["synthetic"])}))
    say("binned accuracy (shared bins)")
    metrics.extend(_accuracy_metrics(real, synthetic, holdout, types, cfg.seed, data))
    data.marginals = _marginals(real, synthetic, holdout, types)
    cont = [c for c, t in types.items() if t in _CONTINUOUS][:30]
    if len(cont) >= 2:
        data.correlations = {"columns": cont, **{
            k: np.round(_pearson_matrix(df, cont).to_numpy(), 4).tolist()
            for k, df in (("real", real), ("synthetic", synthetic))}}

    say("detection")
    det = {k: detection_auc(real, df, types, seed=cfg.seed, max_rows=cfg.detection_rows)
           for k, df in (("synthetic", synthetic), ("holdout", holdout))}

    def det_score(auc: float) -> float:
        return 1 - 2 * max(auc - 0.5, 0.0)

    base = det_score(det["holdout"]["auc"])
    n_det = det["synthetic"]["rows_per_side"]
    # AUC's standard error under the null (Hanley & McNeil 1982), n rows per side
    det["synthetic"]["warn_margin"] = 3 * math.sqrt((2 * n_det + 1) / (12 * n_det**2))
    det["synthetic"]["warn_reference"] = max(0.5, det["holdout"]["auc"])
    metrics.append(_result(
        "detection_auc", "detection", det["synthetic"]["auc"], det["holdout"]["auc"], "lower",
        (0, 1), "ROC AUC of a classifier telling these rows from real ones (0.5 = "
        "indistinguishable; 5-fold CV, gradient-boosted trees)",
        score=min(1.0, det_score(det["synthetic"]["auc"]) / base) if base > 0 else 0.0,
        breakdown={**det, "warn_margin": det["synthetic"]["warn_margin"],
                   "warn_reference": det["synthetic"]["warn_reference"]}))

    if cfg.target is not None:
        say("utility (TSTR)")
        n = min(len(real), len(synthetic))
        rng = np.random.default_rng(cfg.seed + 1)
        syn_s = synthetic.iloc[np.sort(rng.choice(len(synthetic), n, replace=False))]
        s_val = tstr(syn_s, holdout, cfg.target, types, seed=cfg.seed)
        # the baseline's own spread: the same model on several real samples of the same size
        # (bootstrap when the real data is no larger than the synthetic)
        r_vals = []
        for _ in range(cfg.tstr_repeats):
            pick = rng.choice(len(real), n, replace=n >= len(real))
            r_vals.append(tstr(real.iloc[np.sort(pick)], holdout, cfg.target, types,
                               seed=cfg.seed))
        r_val = float(np.mean(r_vals))
        kind = "R²" if types[cfg.target] in _CONTINUOUS else "macro F1"
        metrics.append(_result("tstr", "utility", s_val, r_val, "higher", (-math.inf, 1),
                               f"{kind} on the holdout of a model predicting '{cfg.target}', "
                               f"trained on {n} synthetic rows (baseline: mean over "
                               f"{cfg.tstr_repeats} samples of {n} real rows)",
                               breakdown={"target": cfg.target, "rows": n,
                                          "real_runs": r_vals,
                                          "warn_margin": 3 * float(np.std(r_vals))}))

    if cfg.privacy:
        say("privacy (distance to closest record)")
        metrics.extend(_privacy(real, synthetic, holdout, types, cfg, data))
        if cfg.attacks and len(holdout) >= 4:
            say("privacy attacks")
            metrics.extend(_attacks(real, synthetic, holdout, types, cfg, data))
    return metrics, data


_ATTACKS = {
    "singling_out_risk": (singling_out_risk, "singling out: predicates that match exactly one "
                          "synthetic row single out a training row, beyond real control rows"),
    "linkability_risk": (linkability_risk, "linkability: two halves of a row's columns link "
                         "through the nearest synthetic rows, beyond real control rows"),
    "inference_risk": (inference_risk, "attribute inference: a column guessed from the nearest "
                       "synthetic row on the others, beyond real control rows"),
}


def _attacks(real, synthetic, holdout, types, cfg, data) -> list[MetricResult]:
    """Anonymeter-style attack risks with the holdout as control rows; the baseline is the
    same attack with one half of the holdout posing as the synthetic set and the other as
    control (what a generator that never saw the training rows scores)."""
    rng = np.random.default_rng(cfg.seed + 4)
    perm = rng.permutation(len(holdout))
    half = len(holdout) // 2
    fresh = holdout.iloc[np.sort(perm[:half])].reset_index(drop=True)
    control = holdout.iloc[np.sort(perm[half:])].reset_index(drop=True)
    n = cfg.attack_rows
    out = []
    for name, (attack, what) in _ATTACKS.items():
        syn = attack(real, synthetic, holdout, types, n_attacks=n, seed=cfg.seed)
        base = attack(real, fresh, control, types, n_attacks=n, seed=cfg.seed)
        data.attacks[name] = {"synthetic": syn.as_dict(), "holdout": base.as_dict()}
        excess = max(0.0, syn.risk - max(0.0, base.risk))
        out.append(_result(
            name, "privacy", syn.risk, base.risk, "lower", (-1, 1),
            f"{what} (risk = excess success ÷ what control leaves; 95% CI "
            f"[{syn.low:+.3f}, {syn.high:+.3f}])", score=max(0.0, 1.0 - excess),
            # ≈ 3 standard errors above 0: the 95% half-width × 1.5
            breakdown={**syn.as_dict(), "holdout": base.as_dict(), "warn_reference": 0.0,
                       "warn_margin": 1.5 * max(syn.risk - syn.low, 0.0)}))
    syn = membership_auc(real, synthetic, holdout, types, n_attacks=n, seed=cfg.seed)
    base = membership_auc(real, fresh, control, types, n_attacks=n, seed=cfg.seed)
    data.attacks["membership_auc"] = {"synthetic": syn, "holdout": base}
    b = 1 - 2 * max(base["auc"] - 0.5, 0.0)
    out.append(_result(
        "membership_auc", "privacy", syn["auc"], base["auc"], "lower", (0, 1),
        "membership inference: ROC AUC of calling a real row a training row the closer it "
        "lies to a synthetic row (0.5 = membership cannot be told)",
        score=min(1.0, (1 - 2 * max(syn["auc"] - 0.5, 0.0)) / b) if b > 0 else 0.0,
        breakdown={**syn, "holdout": base, "warn_reference": max(0.5, base["auc"]),
                   "warn_margin": 3 * syn["se"]}))
    return out


def _privacy(real, synthetic, holdout, types, cfg, data) -> list[MetricResult]:
    num = [c for c, t in types.items() if t in _CONTINUOUS]
    cat = [c for c, t in types.items() if t in ("categorical", "boolean")]
    if not num and not cat:
        return []
    space = DistanceSpace.fit(real, num, cat, [synthetic, holdout])
    syn_d = nearest_records(space, synthetic, real, k=2, n_jobs=cfg.n_jobs)
    hold_d = nearest_records(space, holdout, real, k=2, n_jobs=cfg.n_jobs)
    data.dcr = {"synthetic": syn_d[:, 0].round(6).tolist(),
                "holdout": hold_d[:, 0].round(6).tolist()}
    out = [
        _result("dcr_median", "privacy", float(np.median(syn_d[:, 0])),
                float(np.median(hold_d[:, 0])), "higher", (0, 1),
                "median distance to the closest real training row (SDMetrics' DCR distance, "
                "exact nearest neighbour over all training rows)"),
        _result("identical_match_share", "privacy", float((syn_d[:, 0] == 0).mean()),
                float((hold_d[:, 0] == 0).mean()), "lower", (0, 1),
                "share of rows identical to a real training row"),
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        nndr_s = np.where(syn_d[:, 1] > 0, syn_d[:, 0] / syn_d[:, 1], 1.0)
        nndr_h = np.where(hold_d[:, 1] > 0, hold_d[:, 0] / hold_d[:, 1], 1.0)
    out.append(_result("nndr_median", "privacy", float(np.median(nndr_s)),
                       float(np.median(nndr_h)), "higher", (0, 1),
                       "median ratio of the nearest to the second-nearest training row's "
                       "distance (low = close to one specific record)"))
    # closer to train than to holdout: train side sampled to the holdout's size, so that 50% is
    # what a generator that does not memorise scores; baseline: one half of the holdout
    # against the other half and an equal train sample, measured the same way
    rng = np.random.default_rng(cfg.seed + 2)
    half = len(holdout) // 2
    if half >= 1:
        perm = rng.permutation(len(holdout))
        h_a, h_b = holdout.iloc[perm[:half]], holdout.iloc[perm[half:2 * half]]
        t_half = real.iloc[np.sort(rng.choice(len(real), min(len(real), half), replace=False))]
        t_full = real.iloc[np.sort(rng.choice(len(real), min(len(real), len(holdout)),
                                              replace=False))]
        s_t = nearest_records(space, synthetic, t_full, n_jobs=cfg.n_jobs)[:, 0]
        s_h = nearest_records(space, synthetic, holdout, n_jobs=cfg.n_jobs)[:, 0]
        b_t = nearest_records(space, h_a, t_half, n_jobs=cfg.n_jobs)[:, 0]
        b_h = nearest_records(space, h_a, h_b, n_jobs=cfg.n_jobs)[:, 0]
        share = float(((s_t < s_h) + 0.5 * (s_t == s_h)).mean())
        base = float(((b_t < b_h) + 0.5 * (b_t == b_h)).mean())
        out.append(_result("closer_to_train_share", "privacy", share, base, "lower", (0, 1),
                           "share of rows closer to a training row than to any holdout row "
                           "(train sampled to the holdout's size; ≈ 0.5 without memorisation; "
                           "ties count half)",
                           score=relative_score(max(share, 0.5), max(base, 0.5), "lower"),
                           breakdown={"warn_reference": max(base, 0.5),
                                      "warn_margin": 3 * math.sqrt(0.25 / len(synthetic))}))
    return out


def _marginals(real, synthetic, holdout, types, max_columns: int = 24, bins: int = 30) -> dict:
    """Histogram / frequency data for the report's marginal plots (first ``max_columns``)."""
    out = {}
    for c, t in list(types.items())[:max_columns]:
        if t == "id":
            continue
        if t in _CONTINUOUS:
            r = _as_numeric(real[c]).dropna().to_numpy()
            if not len(r):
                continue
            edges = np.histogram_bin_edges(r, bins=bins)
            hist = {}
            for k, df in (("real", real), ("synthetic", synthetic), ("holdout", holdout)):
                v = _as_numeric(df[c]).dropna().to_numpy()
                h, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
                hist[k] = (h / max(1, len(v))).round(5).tolist()
            out[c] = {"kind": "numeric", "edges": edges.tolist(), **hist}
        else:
            top = real[c].astype(str).value_counts().index[:20]
            freq = {}
            for k, df in (("real", real), ("synthetic", synthetic), ("holdout", holdout)):
                vc = df[c].astype(str).value_counts(normalize=True)
                freq[k] = [round(float(vc.get(x, 0.0)), 5) for x in top]
            out[c] = {"kind": "categorical", "categories": [str(x) for x in top], **freq}
    return out
