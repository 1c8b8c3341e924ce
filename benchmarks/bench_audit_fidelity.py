"""Does the table audit's fidelity rank real held-out rows above a synthetic set?

For each real table: split 50/50 into train and holdout (seeded), fit the Gaussian copula on
train, sample as many rows as the holdout, then score the synthetic rows and the holdout
against train with (a) SDMetrics-equal column-pair trends (each side binned on its own range)
and (b) shared-bin binned accuracy (bins fitted on train; univariate, bivariate,
trivariate). A measure whose holdout score is below the copula's ranks synthetic data above
real data. With ``--sdmetrics`` the SDMetrics ``QualityReport`` pair-trend score is run on the
same rows in the same run, for comparison.

Tables (real, installed offline by the project's peers extra): palmerpenguins (344 × 8),
vega_datasets' Seattle weather (1,461 × 6) and cars (406 × 9).

Usage: python benchmarks/bench_audit_fidelity.py [--seed 0] [--sdmetrics]
"""

from __future__ import annotations

import argparse
import time

import palmerpenguins
import pandas as pd
import vega_datasets as vega

from synthloop.audit.table import column_pair_trends, pair_trends_score
from synthloop.generate.copula import GaussianCopula
from synthloop.measures.accuracy import SharedBins, binned_accuracy
from synthloop.measures.columns import as_datetimes, infer_column_types


def tables() -> dict[str, pd.DataFrame]:
    return {"penguins": palmerpenguins.load_penguins(),
            "seattle-weather": vega.local_data.seattle_weather(),
            "cars": vega.local_data.cars()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sdmetrics", action="store_true")
    a = ap.parse_args()
    print(f"{'table':16} {'side':10} {'pair trends (per side)':>23} {'acc uni':>8} "
          f"{'acc bi':>7} {'acc tri':>8}")
    for name, df in tables().items():
        df = df.sample(frac=1, random_state=a.seed).reset_index(drop=True)
        half = len(df) // 2
        train, holdout = df.iloc[:half].reset_index(drop=True), \
            df.iloc[half:].reset_index(drop=True)
        t0 = time.perf_counter()
        syn = GaussianCopula().fit(train, seed=a.seed).sample(len(holdout), seed=a.seed)
        fit_s = time.perf_counter() - t0
        types = infer_column_types(train)
        conv = as_datetimes({"t": train, "h": holdout, "s": syn}, types)
        train, holdout, syn = conv["t"], conv["h"], conv["s"]
        bins = SharedBins(train, types)
        for side, other in (("holdout", holdout), ("copula", syn)):
            pt = pair_trends_score(column_pair_trends(train, other, types))
            acc = binned_accuracy(train, other, types, bins=bins, seed=a.seed)
            extra = ""
            if a.sdmetrics:
                from sdmetrics.reports.single_table import QualityReport

                meta = {"columns": {c: {"sdtype": t} for c, t in types.items()}}
                rep = QualityReport()
                rep.generate(train, other, meta, verbose=False)
                props = rep.get_properties().set_index("Property")["Score"]
                extra = f"  (SDMetrics {props['Column Pair Trends']:.3f})"
            print(f"{name:16} {side:10} {pt:23.3f} {acc['univariate']:8.3f} "
                  f"{acc['bivariate']:7.3f} {acc['trivariate']:8.3f}{extra}")
        print(f"{'':16} copula fit+sample {fit_s:.2f} s on {len(train)} rows")
    print("a measure ranks real data first when its holdout row is above its copula row")


if __name__ == "__main__":
    main()
