"""The vertical-domain walk-through shared by ``finance.py`` and ``healthcare.py``: linked
(sequential) tables and a flat table, each synthesized, audited against real held-out data,
and published with a signed, verified manifest. Every step is a public synthloop function."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from synthloop.audit import audit
from synthloop.audit.relational import audit_relational, read_tables
from synthloop.compliance.manifest import generate_signing_key, publish_manifest, verify_dataset
from synthloop.generate.oneoff import generate_dataset
from synthloop.generate.relational import write_tables
from synthloop.records.relational import RelationalSchema

QUICK = {"max_seconds": 8.0}  # --quick: every network trains for at most 8 s


def arguments(default_out: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(default_out))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true",
                    help="cap training at 8 s per model and the flat table at 800 rows")
    return ap.parse_args()


def _publish(folder: Path, key: Path, public: str) -> str:
    pub = publish_manifest(folder, key_file=key)
    rep = verify_dataset(folder, public_key=public)
    assert rep.ok, rep.problems
    return (f"signed manifest {pub.path.name} ({len(pub.errors)} Croissant errors), verified: "
            f"{rep.records:,} records")


def run(*, out: Path, seed: int, quick: bool, linked: tuple[RelationalSchema, dict],
        flat: tuple[str, pd.DataFrame, str]) -> dict:
    """``linked``: (schema, real tables); ``flat``: (name, real table, TSTR target column).
    Writes under ``out``: ``linked/`` and ``<name>/`` (synthetic records, audit HTML and JSON,
    signed manifest) and ``signing-key.pem``. Returns the two audits."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    key = out / "signing-key.pem"
    public = generate_signing_key(key)
    options = QUICK if quick else None

    # 1. linked tables: hold out 30% of the root entities, synthesize the rest, audit
    schema, frames = linked
    train, hold = schema.split(frames, 0.3, seed)
    syn_dir = out / "linked"
    write_tables(schema, train, syn_dir, seed=seed, options=options)
    rel = audit_relational(schema, train, read_tables(syn_dir, schema), hold)
    rel.to_html(out / "linked-audit.html")
    rel.to_json(out / "linked-audit.json")
    print(f"linked tables {' → '.join(schema.order)}: audit score {rel.score:.3f} "
          f"(grade {rel.grade}); " + ", ".join(f"{p} {v:.3f}" for p, v in rel.properties.items()))
    for m in rel.metrics:
        if m.prop != "fidelity":
            print(f"  {m.name:34} synthetic {m.value:.3f}   real holdout {m.baseline:.3f}")
    print("  " + _publish(syn_dir, key, public))

    # 2. a flat table: the same, with the privacy attacks of the table audit
    name, df, target = flat
    df = df.sample(frac=1, random_state=seed).reset_index(drop=True)
    n_hold = len(df) * 3 // 10
    real_dir = out / "real"
    real_dir.mkdir()
    hold_path, train_path = real_dir / f"{name}-holdout.csv", real_dir / f"{name}-train.csv"
    df.iloc[:n_hold].to_csv(hold_path, index=False)
    train_df = df.iloc[n_hold:]
    train_df.iloc[:800 if quick else None].to_csv(train_path, index=False)
    syn_path = out / name
    generate_dataset("auto", n=len(train_df), out=syn_path, table=train_path, seed=seed)
    flat_audit = audit(train_path, syn_path, hold_path, kind="table", target=target, seed=seed)
    flat_audit.to_html(out / f"{name}-audit.html")
    flat_audit.to_json(out / f"{name}-audit.json")
    print(f"{name} ({len(df):,} rows × {df.shape[1]}): audit score {flat_audit.score:.3f} "
          f"(grade {flat_audit.grade}); " + ", ".join(
              f"{p} {v:.3f}" for p, v in flat_audit.properties.items() if v is not None))
    for metric in ("accuracy_bivariate", "detection_auc", "tstr", "identical_match_share",
                   "singling_out_risk", "inference_risk", "membership_auc"):
        m = flat_audit.metric(metric)
        print(f"  {metric:34} synthetic {m.value:.3f}   real holdout {m.baseline:.3f}")
    for w in flat_audit.warnings + rel.warnings:
        print(f"  {w.level}: {w.message}")
    print("  " + _publish(syn_path, key, public))
    return {"linked": rel, "flat": flat_audit}
