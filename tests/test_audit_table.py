"""Table audit: SDMetrics-equal quality scores, exact DCR, planted faults, bad inputs."""

from __future__ import annotations

import warnings

import numpy as np
import palmerpenguins
import pandas as pd
import pytest
import vega_datasets as vega

import synthloop
from synthloop.audit.table import quality_scores
from synthloop.errors import InputError
from synthloop.measures.columns import infer_column_types
from synthloop.measures.dcr import DistanceSpace, exact_distances, nearest_records


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    """Seattle weather 2012-2015 (1,461 days; date, numbers, a category), shuffled."""
    df = vega.local_data.seattle_weather()
    return df.sample(frac=1, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    df = palmerpenguins.load_penguins()  # numbers, categories, missing values
    return df.sample(frac=1, random_state=0).reset_index(drop=True)


def _noisy_copy(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A crude synthesizer: resample rows, jitter numbers, shuffle one category."""
    rng = np.random.default_rng(seed)
    out = df.sample(len(df), replace=True, random_state=seed).reset_index(drop=True)
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c] + rng.normal(0, out[c].std() * 0.3, len(out))
    cat = [c for c in out.columns if out[c].dtype == object]
    if cat:
        out[cat[0]] = rng.permutation(out[cat[0]].to_numpy())
    return out


@pytest.mark.parametrize("which", ["weather", "penguins"])
def test_quality_scores_equal_sdmetrics(which, weather, penguins):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the single-table report's deprecation
        import sdmetrics.reports.single_table as sdm
    real = weather if which == "weather" else penguins
    syn = _noisy_copy(real, seed=1)
    types = infer_column_types(real)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = sdm.QualityReport()
        report.generate(real, syn, {"columns": {c: {"sdtype": t} for c, t in types.items()}},
                        verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    ours = quality_scores(real, syn, types)
    assert ours["column_shapes"] == pytest.approx(props["Column Shapes"], abs=1e-9)
    assert ours["column_pair_trends"] == pytest.approx(props["Column Pair Trends"], abs=1e-9)
    assert ours["overall"] == pytest.approx(report.get_score(), abs=1e-9)


def test_dcr_equals_sdmetrics_cross_join(penguins):
    import sdmetrics.single_table.privacy.dcr_utils as dcr_utils
    real, syn = penguins.iloc[:200].reset_index(drop=True), _noisy_copy(penguins.iloc[200:], 2)
    syn.loc[:4, "bill_length_mm"] = 99.0  # outside the reference range: the bound is loose
    types = infer_column_types(real)
    meta = {"columns": {c: {"sdtype": t} for c, t in types.items()}}
    expected = dcr_utils.calculate_dcr(syn, real, meta).to_numpy()
    num = [c for c, t in types.items() if t == "numerical"]
    cat = [c for c, t in types.items() if t == "categorical"]
    got = nearest_records(DistanceSpace.fit(real, num, cat, [syn]), syn, real)[:, 0]
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_dcr_exact_with_missing_values_many_categories_and_out_of_range(k):
    rng = np.random.default_rng(0)

    def table(n: int, scale: float) -> pd.DataFrame:
        df = pd.DataFrame({"x": rng.normal(0, scale, n), "y": rng.normal(0, 1, n),
                           "c": rng.integers(0, 150, n).astype(str),  # many small groups
                           "d": rng.choice(["a", "b"], n)})
        return df.mask(rng.random(df.shape) < 0.1)  # 10% missing, all columns

    ref, q = table(3000, 1.0), table(400, 2.0)  # wider queries: values outside the range
    space = DistanceSpace.fit(ref, ["x", "y"], ["c", "d"], [q])
    got = nearest_records(space, q, ref, k=k)
    rn, rc = space.encode(ref)
    qn, qc = space.encode(q)
    brute = np.stack([np.sort(exact_distances(space, qn[i], qc[i], rn, rc))[:k]
                      for i in range(len(q))])
    np.testing.assert_allclose(got, brute, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fresh_holdout_raises_no_warning(weather, seed):
    df = weather.sample(frac=1, random_state=seed).reset_index(drop=True)
    real, holdout, fresh = df.iloc[:800], df.iloc[800:1130], df.iloc[1130:]
    r = synthloop.audit(real, fresh, holdout, kind="table", target="weather", seed=seed)
    assert r.warnings == [], [w.message for w in r.warnings]
    assert r.metric("identical_match_share").value == 0.0


def test_copied_rows_give_identical_share_and_privacy_warning(weather):
    real, holdout, fresh = weather.iloc[:800], weather.iloc[800:1000], weather.iloc[1000:]
    n_copy = round(0.05 * len(fresh) / 0.95)
    syn = pd.concat([fresh, real.iloc[:n_copy]]).reset_index(drop=True)
    r = synthloop.audit(real, syn, holdout, kind="table")
    share = r.metric("identical_match_share").value
    assert share == pytest.approx(0.05, abs=0.005)
    assert any(w.prop == "privacy" and w.level == "critical" for w in r.warnings)


def test_schema_mismatch_names_the_column(weather):
    with pytest.raises(InputError, match="'wind'"):
        synthloop.audit(weather, weather.drop(columns=["wind"]), kind="table")
    bad = weather.copy()
    bad["temp_max"] = "hot"
    with pytest.raises(InputError, match="'temp_max'"):
        synthloop.audit(weather, bad, kind="table")


def test_all_nan_column_is_reported_not_dropped(penguins):
    real = penguins.copy()
    real["empty"] = np.nan
    syn = _noisy_copy(real, 3)
    r = synthloop.audit(real, syn, kind="table", privacy=False)
    assert "empty" in r.data["skipped"]
    cols = {c["column"]: c for c in r.metric("column_shapes").breakdown["columns"]}
    assert "empty" in cols and cols["empty"]["synthetic"] is None or \
        np.isnan(cols["empty"]["synthetic"])
    assert np.isfinite(r.score)


def test_mixed_types_missing_values_and_ids(penguins):
    real = penguins.copy()
    real["name"] = [f"penguin-{i}" for i in range(len(real))]  # identifier: not compared
    real["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(real)), "D")
    syn = _noisy_copy(real, 4)
    r = synthloop.audit(real, syn, kind="table")
    assert r.data["column_types"]["name"] == "id"
    assert r.data["column_types"]["when"] == "datetime"
    assert {m.name for m in r.metrics} >= {"column_shapes", "column_pair_trends",
                                           "detection_auc", "dcr_median", "nndr_median",
                                           "closer_to_train_share"}


def test_shared_bins_do_not_rank_broken_pairs_above_real_data():
    """A fresh real sample with a slightly wider range shifts per-side bins (SDMetrics'
    ContingencySimilarity) but not shared ones; a synthetic set that breaks the numeric ×
    category dependency keeps its marginals yet scores below real data on shared bins."""
    from synthloop.audit.table import column_pair_trends
    from synthloop.measures.accuracy import binned_accuracy

    rng = np.random.default_rng(0)

    def sample(n: int) -> pd.DataFrame:
        cut = rng.choice(["fair", "good", "ideal"], n, p=[0.2, 0.3, 0.5])
        table = rng.normal(57, 2, n) + np.select([cut == "fair", cut == "good"], [3, 1], 0)
        return pd.DataFrame({"cut": cut, "table": table})

    types = {"cut": "categorical", "table": "numerical"}
    real, holdout = sample(4000), sample(1000)
    holdout.loc[0, "table"] = 95.0  # one outlier: per-side bins of the holdout shift
    broken = sample(1000)
    broken["table"] = rng.permutation(broken["table"].to_numpy())  # marginals kept
    sdm = {k: column_pair_trends(real, df, types, real_association_threshold=0)[0]["score"]
           for k, df in (("holdout", holdout), ("broken", broken))}
    acc = {k: binned_accuracy(real, df, types)["bivariate"]
           for k, df in (("holdout", holdout), ("broken", broken))}
    assert sdm["holdout"] < sdm["broken"]          # the per-side defect, reproduced
    assert acc["holdout"] > acc["broken"] + 0.05   # shared bins rank real data first
    assert acc["holdout"] > 0.9  # ≈ 1 − expected sampling noise at 1,000 vs 4,000 rows


def test_binned_accuracy_is_one_for_the_reference_and_handles_missing_and_unseen():
    from synthloop.measures.accuracy import SharedBins, binned_accuracy

    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0] * 25, "c": ["a", "b", None, "a"] * 25,
                       "d": pd.to_datetime(["2020-01-01", None, "2021-06-01", "2022-01-01"] * 25)})
    types = {"x": "numerical", "c": "categorical", "d": "datetime"}
    a = binned_accuracy(df, df, types)
    assert a["univariate"] == a["bivariate"] == a["trivariate"] == 1.0
    other = df.assign(c=df["c"].fillna("zzz"))  # a category the reference never had → other
    codes = SharedBins(df, types).codes(other)["c"]
    assert len(set(codes)) == 3 and codes.max() < SharedBins(df, types).size("c") - 1
    assert binned_accuracy(df, other, types)["columns"]["c"] == pytest.approx(0.75)
    assert binned_accuracy(df, other, types)["columns"]["x"] == 1.0


def test_table_audit_scores_fidelity_on_shared_bins(penguins):
    real, syn = penguins.iloc[:250], _noisy_copy(penguins.iloc[:250], 7)
    r = synthloop.audit(real, syn, holdout=penguins.iloc[250:], kind="table")
    m = {x.name: x for x in r.metrics}
    assert m["column_pair_trends"].score is None        # SDMetrics-equal, informational
    for k in ("accuracy_univariate", "accuracy_bivariate", "accuracy_trivariate"):
        assert 0 < m[k].value <= 1 and 0 < m[k].baseline <= 1 and m[k].score is not None
    assert m["accuracy_bivariate"].breakdown["rows_per_sample"] == len(penguins) - 250
    assert r.data["accuracy"]["holdout"]["bivariate"] == m["accuracy_bivariate"].baseline


def test_detection_does_not_separate_real_halves_by_rare_category_codes():
    """A category with thousands of values (e.g. job titles): most appear in one half only.
    Codes by first appearance would put the second half's new values in a range of their own
    and the classifier would tell two real halves apart."""
    from synthloop.audit.table import detection_auc

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"title": [f"t{i}" for i in rng.integers(0, 5000, 4000)],
                       "x": rng.normal(size=4000)})
    a, b = df.iloc[:2000], df.iloc[2000:]
    types = {"title": "categorical", "x": "numerical"}
    assert detection_auc(a, b, types, seed=0, max_rows=2000)["auc"] < 0.56
