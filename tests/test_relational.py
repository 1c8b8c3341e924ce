"""Linked and sequential tables: the schema and its checks, the relational synthesizer
(three levels, sequences, dates), the relational audit and what it catches, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_audit_cli import _one_error_line, _rendered_dom

from synthloop.audit import audit
from synthloop.audit.relational import audit_relational, read_tables
from synthloop.errors import ConfigError, InputError
from synthloop.generate.relational import RelationalSynthesizer
from synthloop.records.relational import RelationalSchema, TableSpec, read_schema

EGSINGLE = Path(__file__).parent / "data" / "egsingle" / "schema.yaml"
FAST = dict(max_epochs=60, patience=4, hidden=64, threads=1)


@pytest.fixture(scope="module")
def eg():
    schema, frames = read_schema(EGSINGLE)
    train, hold = schema.split(frames, 0.3, 0)
    synth = RelationalSynthesizer(schema, options=FAST).fit(train, seed=0)
    return schema, frames, train, hold, synth, synth.sample(seed=1)


def _copy(frames):
    return {k: v.copy() for k, v in frames.items()}


# -- the schema ----------------------------------------------------------------------------

def test_schema_orders_parents_first_and_splits_by_root_entity(eg):
    schema, frames, train, hold, *_ = eg
    assert schema.order == ["schools", "children", "years"]
    assert [schema.depth(n) for n in schema.order] == [0, 1, 2]
    assert len(hold["schools"]) == 18 and len(train["schools"]) == 42
    # no entity is split: every held-out child and year sits under a held-out school
    assert set(hold["children"].schoolid) <= set(hold["schools"].schoolid)
    assert not set(hold["children"].childid) & set(train["children"].childid)
    assert len(train["years"]) + len(hold["years"]) == len(frames["years"])
    assert set(hold["years"].childid) <= set(hold["children"].childid)


@pytest.mark.parametrize("tables, message", [
    ({"a": {"key": "id"}, "b": {"key": "id", "parent": "c", "foreign_key": "a_id"}},
     "parent 'c' is not a table"),
    ({"a": {"key": "id", "parent": "b", "foreign_key": "x"},
      "b": {"key": "id", "parent": "a", "foreign_key": "y"}}, "cyclic links a → b → a"),
    ({"a": {"key": "id"}, "b": {"parent": "a"}}, "give parent and foreign_key together"),
    ({"a": {"key": "id", "order_by": "t"}}, "order_by needs a parent"),
    ({"a": {}, "b": {"parent": "a", "foreign_key": "a_id"}}, "'a' has children ('b') but no key"),
    ({"a": {"key": "id", "kye": "x"}}, "unknown field 'kye'"),
    ({"a": {"key": 3}}, "key must be a string"),
])
def test_bad_schemas_are_one_clear_error(tables, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RelationalSchema.from_dict({"tables": tables})


def test_bad_data_names_table_row_and_column():
    schema = RelationalSchema([TableSpec("p", key="id"),
                               TableSpec("c", parent="p", foreign_key="pid", order_by="t")])
    p = pd.DataFrame({"id": [1, 2, 3], "x": [0.1, 0.2, 0.3]})
    c = pd.DataFrame({"pid": [1, 1, 2, 9], "t": [1, 2, 1, 1], "v": [1, 2, 3, 4]})
    with pytest.raises(InputError, match=r"table 'c': row 3: foreign key 'pid' = 9 has no "
                                         r"parent row in 'p'"):
        schema.check({"p": p, "c": c})
    with pytest.raises(InputError, match="table 'p': key column 'id' is not a column"):
        schema.check({"p": p.rename(columns={"id": "ident"}), "c": c})
    with pytest.raises(InputError, match="table 'p': row 2: key 'id' value 1 is not unique"):
        schema.check({"p": p.assign(id=[1, 2, 1]), "c": c.iloc[:3]})
    with pytest.raises(InputError, match="order_by column 't' must hold numbers or dates"):
        schema.check({"p": p, "c": c.iloc[:3].assign(t=["a", "b", "c"])})
    with pytest.raises(InputError, match="column '__n_c' uses a reserved name"):
        schema.check({"p": p.assign(__n_c=1), "c": c.iloc[:3]})
    with pytest.raises(InputError, match="table 'c': no data given"):
        schema.check({"p": p})


# -- the synthesizer -----------------------------------------------------------------------

def test_three_levels_round_trip_with_no_broken_keys(eg):
    schema, _, train, _, _, syn = eg
    for name in schema.order:
        assert list(syn[name].columns) == list(train[name].columns)
        for c in train[name].columns:
            assert syn[name][c].dtype == train[name][c].dtype, (name, c)
    assert len(syn["schools"]) == len(train["schools"])
    assert syn["schools"].schoolid.is_unique and syn["children"].childid.is_unique
    assert syn["children"].schoolid.isin(syn["schools"].schoolid).all()
    assert syn["years"].childid.isin(syn["children"].childid).all()
    # sizes follow the drawn child counts, near the real totals
    assert 0.7 < len(syn["years"]) / len(train["years"]) < 1.3
    # sequences come out in time order, one entity's events together
    years = syn["years"]
    assert (years.groupby("childid").year.diff().dropna() >= 0).all()
    lengths = years.groupby("childid").size()
    real_lengths = train["years"].groupby("childid").size()
    assert lengths.max() <= real_lengths.max() and lengths.min() >= real_lengths.min()


def test_relational_audit_scores_the_model_near_real_holdout(eg):
    schema, _, train, hold, _, syn = eg
    r = audit_relational(schema, train, syn, hold)
    m = {x.name: x for x in r.metrics}
    assert m["years.referential_integrity"].value == 1.0
    assert m["children.referential_integrity"].value == 1.0
    for name in ("years.child_counts", "years.gaps", "years.position_accuracy",
                 "years.lag_accuracy", "years.parent_child_accuracy", "years.accuracy"):
        assert m[name].score >= 0.9, (name, m[name].value, m[name].baseline)
    assert not [w for w in r.warnings if w.level == "critical"]
    assert r.kind == "relational" and set(r.properties) == {"fidelity", "structure",
                                                            "sequences"}


def test_sequences_are_learned_not_shuffled(eg):
    """Each event follows the previous one: the model's lag-1 and position accuracies sit
    far above those of the same synthetic rows shuffled across entities."""
    schema, _, train, hold, _, syn = eg
    shuffled = _copy(syn)
    rng = np.random.default_rng(0)
    for c in ("math", "grade", "retained"):
        shuffled["years"][c] = rng.permutation(shuffled["years"][c].to_numpy())
    good = {m.name: m.value for m in audit_relational(schema, train, syn, hold).metrics}
    bad = {m.name: m.value for m in audit_relational(schema, train, shuffled, hold).metrics}
    assert good["years.lag_accuracy"] > bad["years.lag_accuracy"] + 0.2
    assert good["years.position_accuracy"] > bad["years.position_accuracy"] + 0.1


def test_sampling_is_seeded(eg):
    *_, synth, syn = eg
    again = synth.sample(seed=1)
    other = synth.sample(seed=2)
    for name in syn:
        pd.testing.assert_frame_equal(syn[name], again[name])
    assert not syn["years"].equals(other["years"])
    assert len(synth.sample(10, seed=1)["schools"]) == 10


def test_datetime_sequences_keep_order_and_gaps():
    """Patients → visits on real dates: visit dates come out as dates, in order, with the
    real spacing (a visit about every 30 days, a few after a long break)."""
    rng = np.random.default_rng(3)
    n = 400
    patients = pd.DataFrame({"pid": np.arange(n), "age": rng.integers(20, 80, n),
                             "arm": rng.choice(["drug", "placebo"], n)})
    rows = []
    for pid, arm in zip(patients.pid, patients.arm, strict=True):
        t = pd.Timestamp("2021-01-04") + pd.Timedelta(days=int(rng.integers(0, 200)))
        y = rng.normal(10, 2)
        for _ in range(int(rng.integers(2, 7))):
            rows.append({"pid": pid, "visit": t, "score": round(y, 1)})
            t += pd.Timedelta(days=int(rng.choice([28, 30, 31, 90], p=[0.3, 0.4, 0.2, 0.1])))
            y += (-0.8 if arm == "drug" else 0.1) + rng.normal(0, 0.3)
    visits = pd.DataFrame(rows)
    schema = RelationalSchema([TableSpec("patients", key="pid"),
                               TableSpec("visits", parent="patients", foreign_key="pid",
                                         order_by="visit")])
    frames = {"patients": patients, "visits": visits}
    train, hold = schema.split(frames, 0.3, 0)
    synth = RelationalSynthesizer(schema, options=FAST).fit(train, seed=0)
    syn = synth.sample(seed=1)
    v = syn["visits"]
    assert pd.api.types.is_datetime64_any_dtype(v.visit)
    gaps = v.groupby("pid").visit.diff().dropna().dt.days
    assert (gaps >= 0).all() and gaps.between(20, 100).mean() > 0.9
    r = audit_relational(schema, train, syn, hold)
    m = {x.name: x for x in r.metrics}
    assert m["visits.gaps"].score > 0.8
    # the trend follows the arm: drug scores fall over a sequence, placebo ones do not
    joined = v.merge(syn["patients"], on="pid")
    slope = joined.groupby("arm").apply(
        lambda g: np.polyfit(g.groupby("pid").cumcount(), g.score, 1)[0],
        include_groups=False)
    assert slope["drug"] < slope["placebo"] - 0.35  # real: -0.71 and +0.07


# -- the audit catches ---------------------------------------------------------------------

def test_audit_flags_broken_links_shuffled_time_and_wrong_parents(eg):
    schema, _, train, hold, *_ = eg
    rng = np.random.default_rng(1)
    broken = _copy(train)
    bad = rng.random(len(broken["years"])) < 0.05
    broken["years"].loc[bad, "childid"] = -1
    r = audit_relational(schema, train, broken, hold)
    integrity = r.metric("years.referential_integrity")
    assert integrity.value == pytest.approx(1 - bad.mean())
    assert integrity.breakdown["broken"] == bad.sum()
    assert r.warnings[0].level == "critical" and "Broken links" in r.warnings[0].message

    shuffled = _copy(train)
    shuffled["years"]["year"] = rng.permutation(shuffled["years"].year.to_numpy())
    msgs = " ".join(w.message for w in audit_relational(schema, train, shuffled, hold).warnings)
    assert "time gaps between 'years' events" in msgs

    moved = _copy(train)
    moved["children"]["schoolid"] = rng.choice(moved["schools"].schoolid,
                                               len(moved["children"]))
    r = audit_relational(schema, train, moved, hold)
    assert any(w.metric == "children.child_counts" for w in r.warnings)


def test_fresh_real_entities_raise_no_warning(eg):
    schema, _, train, hold, *_ = eg
    tr, fresh = schema.split(train, 0.4, 1)
    r = audit_relational(schema, tr, fresh, hold)
    assert r.warnings == [], [w.message for w in r.warnings]
    assert all(m.breakdown.get("warn_margin", 0) >= 0 for m in r.metrics)


# -- the command line ----------------------------------------------------------------------

def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthloop.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def _subset(tmp_path: Path, n_schools: int) -> Path:
    """The first ``n_schools`` schools of the fixture with their children and years, and a
    schema over them (CSV, Parquet and JSONL: every reader)."""
    d = tmp_path / "real"
    d.mkdir()
    schema, frames = read_schema(EGSINGLE)
    schools = frames["schools"].iloc[:n_schools]
    kids = frames["children"][frames["children"].schoolid.isin(schools.schoolid)]
    years = frames["years"][frames["years"].childid.isin(kids.childid)]
    schools.to_csv(d / "schools.csv", index=False)
    kids.to_parquet(d / "children.parquet")
    years.to_json(d / "years.jsonl", orient="records", lines=True)
    (d / "schema.yaml").write_text(
        "tables:\n  schools: {path: schools.csv, key: schoolid}\n"
        "  children: {path: children.parquet, key: childid, parent: schools, "
        "foreign_key: schoolid}\n"
        "  years: {path: years.jsonl, parent: children, foreign_key: childid, "
        "order_by: year}\n")
    return d / "schema.yaml"


def test_generate_schema_then_audit_from_the_command_line(tmp_path):
    real = _subset(tmp_path, 20)
    out = tmp_path / "syn"
    r = _cli("generate", "--model", "auto", "--schema", str(real), "--out", str(out),
             "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["children.parquet", "schema.yaml",
                                                     "schools.parquet", "years.parquet"]
    years = pq.read_table(out / "years.parquet")
    assert {"id", "origin", "generator", "parents", "digital_source_type"} <= \
        set(years.column_names)
    gen = json.loads(years.column("generator")[0].as_py())
    assert gen["model"] == "autoregressive" and gen["seed"] == 3
    assert gen["decoding"]["sequential"] is True and gen["decoding"]["parent"] == "children"
    assert years.column("parents")[0].as_py()[0].startswith("dataset:")
    assert years.column("origin").to_pylist()[0] == "synthetic"
    schools = json.loads(pq.read_table(out / "schools.parquet").column("generator")[0].as_py())
    assert schools["model"] == "gaussian-copula"  # 20 rows: auto picks the copula
    # the written folder is itself a valid, linked dataset (no broken keys)
    schema, frames = read_schema(out / "schema.yaml")
    assert len(frames["years"]) == years.num_rows
    assert read_tables(out, schema)["years"].columns.tolist() == \
        ["childid", "year", "grade", "math", "retained"]

    js, page = tmp_path / "a.json", tmp_path / "a.html"
    r = _cli("audit", "--real", str(real), "--synthetic", str(out), "--json", str(js),
             "--out", str(page))
    assert r.returncode == 0, r.stderr
    data = json.loads(js.read_text())
    assert data["kind"] == "relational"
    names = {m["name"] for m in data["metrics"]}
    assert {"years.referential_integrity", "years.child_counts", "years.gaps",
            "years.lag_accuracy", "children.parent_child_accuracy"} <= names
    assert "relational audit" in r.stdout and "years.gaps" in r.stdout
    dom = _rendered_dom(page)
    assert "Rows per parent row: years" in dom and "Time between consecutive events" in dom
    assert dom.count("main-svg") >= 5


def test_audit_python_api_takes_a_schema_path(eg, tmp_path):
    schema, *_ = eg
    res = audit(EGSINGLE, EGSINGLE.parent, seed=2)  # real tables audited against themselves
    assert res.kind == "relational"
    assert res.metric("years.referential_integrity").value == 1.0


def test_bad_schema_inputs_are_one_line_from_the_cli(tmp_path):
    data = EGSINGLE.parent
    cyc = tmp_path / "cyc.yaml"
    cyc.write_text(f"tables:\n  a: {{path: {data}/schools.csv, key: schoolid, parent: b, "
                   f"foreign_key: size}}\n  b: {{path: {data}/children.csv, key: childid, "
                   f"parent: a, foreign_key: schoolid}}\n")
    _one_error_line(_cli("generate", "--model", "auto", "--schema", str(cyc), "--out",
                         str(tmp_path / "o")), "cyclic links")
    orphan = tmp_path / "children.csv"
    kids = pd.read_csv(data / "children.csv")
    kids.loc[5, "schoolid"] = 999999
    kids.to_csv(orphan, index=False)
    bad = tmp_path / "orphan.yaml"
    bad.write_text(f"tables:\n  schools: {{path: {data}/schools.csv, key: schoolid}}\n"
                   f"  children: {{path: {orphan}, key: childid, parent: schools, "
                   f"foreign_key: schoolid}}\n")
    _one_error_line(_cli("generate", "--model", "auto", "--schema", str(bad), "--out",
                         str(tmp_path / "o")),
                    "table 'children': row 5", "999999", "no parent row in 'schools'")
    nokey = tmp_path / "nokey.yaml"
    nokey.write_text(f"tables:\n  schools: {{path: {data}/schools.csv, key: school}}\n")
    _one_error_line(_cli("audit", "--real", str(nokey), "--synthetic", str(tmp_path)),
                    "table 'schools': key column 'school' is not a column")
    assert not (tmp_path / "o").exists()
