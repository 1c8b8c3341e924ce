"""Table audit speed against SDMetrics, measured in the same run, with the scores compared.

1. Quality (column shapes + column-pair trends): ``synthloop.audit.table.quality_scores`` vs
   SDMetrics ``QualityReport`` on ROWS × 70 mixed columns (50 numerical, 20 categorical, 2%
   missing values).
2. Distance to closest record: our exact grouped search vs SDMetrics
   ``DCRBaselineProtection`` (cross join) at DCR_ROWS × DCR_ROWS rows, the same two passes on
   the same rows and the same score; then ours alone at BIG_ROWS × BIG_ROWS.

Usage: python benchmarks/bench_audit_table.py [--rows 100000] [--dcr-rows 8000]
       [--big-rows 200000] [--skip-sdmetrics-dcr]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from synthloop.audit.table import quality_scores
from synthloop.measures.columns import infer_column_types
from synthloop.measures.dcr import DistanceSpace, nearest_records


def make_table(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Correlated mixed-type rows: 50 numerical columns from 8 latent factors, 20 categorical
    columns cut from other mixes, 2% missing values. ``shift`` perturbs the loadings (a
    'synthetic' table that is close to, not equal to, the 'real' one)."""
    structure = np.random.default_rng(1234)  # same structure for real and synthetic
    load_num = structure.normal(size=(8, 50))
    load_cat = structure.normal(size=(8, 20))
    rng = np.random.default_rng(seed)
    if shift:
        load_num = load_num + rng.normal(0, shift, load_num.shape)
        load_cat = load_cat + rng.normal(0, shift, load_cat.shape)
    z = rng.normal(size=(rows, 8))
    num = z @ load_num + rng.normal(0, 1.0, (rows, 50))
    cat_raw = z @ load_cat + rng.normal(0, 1.0, (rows, 20))
    df = pd.DataFrame(num.round(3), columns=[f"x{i}" for i in range(50)])
    for j in range(20):
        k = 3 + j % 10
        edges = np.quantile(cat_raw[:, j], np.linspace(0, 1, k + 1)[1:-1])
        df[f"c{j}"] = pd.Categorical.from_codes(np.searchsorted(edges, cat_raw[:, j]),
                                                [f"v{i}" for i in range(k)]).astype(object)
    mask = rng.random(df.shape) < 0.02
    return df.mask(mask)


def bench_quality(rows: int) -> None:
    from sdmetrics.reports.single_table import QualityReport

    real, syn = make_table(rows, 0), make_table(rows, 1, shift=0.15)
    types = infer_column_types(real)
    meta = {"columns": {c: {"sdtype": t} for c, t in types.items()}}
    t = time.perf_counter()
    ours = quality_scores(real, syn, types)
    t_ours = time.perf_counter() - t
    report = QualityReport()
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report.generate(real, syn, meta, verbose=False)
    t_sdm = time.perf_counter() - t
    props = report.get_properties().set_index("Property")["Score"]
    print(f"quality report, {rows:,} rows × {real.shape[1]} columns")
    print(f"  SDMetrics QualityReport  {t_sdm:8.2f} s   score {report.get_score():.6f} "
          f"(shapes {props['Column Shapes']:.6f}, pairs {props['Column Pair Trends']:.6f})")
    print(f"  synthloop quality_scores {t_ours:8.2f} s   score {ours['overall']:.6f} "
          f"(shapes {ours['column_shapes']:.6f}, pairs {ours['column_pair_trends']:.6f})")
    diff = max(abs(ours["overall"] - report.get_score()),
               abs(ours["column_shapes"] - props["Column Shapes"]),
               abs(ours["column_pair_trends"] - props["Column Pair Trends"]))
    print(f"  speed-up {t_sdm / t_ours:.1f}×, largest score difference {diff:.2e}")
    # above 50,000 rows SDMetrics subsamples each contingency pair without a seed; with that
    # off it scores every row, as we do
    exact = QualityReport()
    exact.num_rows_subsample = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact.generate(real, syn, meta, verbose=False)
    print(f"  SDMetrics without its row subsampling: score {exact.get_score():.6f}, difference "
          f"{abs(exact.get_score() - ours['overall']):.2e}")


def _dcr_tables(rows: int, seed: int) -> pd.DataFrame:
    # 14 columns like the SDMetrics DCR reference figure: 10 numerical, 4 categorical
    df = make_table(rows, seed, shift=0.1 * seed)
    return df[[f"x{i}" for i in range(10)] + [f"c{j}" for j in range(4)]]


def bench_dcr(rows: int, run_sdmetrics: bool) -> None:
    """Our exact DCR against SDMetrics' DCRBaselineProtection: the same two passes (synthetic →
    real, uniformly random → real, on the very same random rows) and the same score."""
    real, syn = _dcr_tables(rows, 0), _dcr_tables(rows, 1)
    types = infer_column_types(real)
    num = [c for c, t in types.items() if t == "numerical"]
    cat = [c for c, t in types.items() if t == "categorical"]
    print(f"distance to closest record, {rows:,} × {rows:,} rows, {real.shape[1]} columns")
    if not run_sdmetrics:
        t = time.perf_counter()
        space = DistanceSpace.fit(real, num, cat, [syn])
        ours = nearest_records(space, syn, real)[:, 0]
        dt = time.perf_counter() - t
        print(f"  synthloop exact (one pass)   {dt:8.2f} s   median DCR {np.median(ours):.6f}")
        return
    from sdmetrics.single_table import DCRBaselineProtection

    meta = {"columns": {c: {"sdtype": t} for c, t in types.items()}}
    DCRBaselineProtection._seed = 0  # its random baseline rows...
    np.random.seed(0)  # ...whose missing-value mask comes from the global generator
    random_rows = DCRBaselineProtection._generate_random_data(real, len(syn))
    np.random.seed(0)
    t = time.perf_counter()
    sdm = DCRBaselineProtection.compute_breakdown(real, syn, meta, None)
    t_sdm = time.perf_counter() - t
    t = time.perf_counter()
    space = DistanceSpace.fit(real, num, cat, [syn, random_rows])
    med_syn = float(np.median(nearest_records(space, syn, real)[:, 0]))
    med_rand = float(np.median(nearest_records(space, random_rows, real)[:, 0]))
    score = min(med_syn / med_rand, 1.0)
    t_ours = time.perf_counter() - t
    ref = sdm["median_DCR_to_real_data"]
    print(f"  SDMetrics DCRBaselineProtection {t_sdm:8.2f} s   score {sdm['score']:.6f} (median "
          f"DCR synthetic {ref['synthetic_data']:.6f}, random {ref['random_data_baseline']:.6f})")
    print(f"  synthloop exact, same passes    {t_ours:8.2f} s   score {score:.6f} (median "
          f"DCR synthetic {med_syn:.6f}, random {med_rand:.6f})")
    diff = max(abs(score - sdm["score"]), abs(med_syn - ref["synthetic_data"]),
               abs(med_rand - ref["random_data_baseline"]))
    print(f"  speed-up {t_sdm / t_ours:.1f}×, largest difference {diff:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dcr-rows", type=int, default=8_000)
    ap.add_argument("--big-rows", type=int, default=200_000)
    ap.add_argument("--skip-sdmetrics-dcr", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # SDMetrics' deprecations
    bench_quality(args.rows)
    bench_dcr(args.dcr_rows, not args.skip_sdmetrics_dcr)
    if args.big_rows:
        bench_dcr(args.big_rows, False)


if __name__ == "__main__":
    main()
