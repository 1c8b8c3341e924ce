"""Bad input never gives a traceback: one ``error:`` line naming the file, line and field,
exit 2 — for hand-made malformed files over every data-reading command, and for what a
property-based fuzzer (hypothesis) makes of JSONL and CSV."""

from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from synthloop.cli import app
from synthloop.errors import InputError
from synthloop.records.io import read_csv, read_jsonl, read_records

runner = CliRunner()
GOOD = [f"This is real sentence number {i} about the weather and other things."
        for i in range(60)]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _jl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# name -> (bytes, what the one error line must say)
CASES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "surrogate.jsonl": ((_jl([{"text": t} for t in GOOD]) + '{"text": "a \\ud800 b"}\n')
                        .encode(), ("line 61", "'text'", "surrogate")),
    "text-null.jsonl": (_jl([{"text": t} for t in GOOD] + [{"text": None}]).encode(),
                        ("line 61", "'text'")),
    "text-int.jsonl": (_jl([{"text": t} for t in GOOD] + [{"text": 5}]).encode(), ("'text'",)),
    "deep.jsonl": ((_jl([{"text": "x"}]) + '{"text": "x", "d": ' + "[" * 100_000
                    + "]" * 100_000 + "}\n").encode(), ("line 2", "nested too deeply")),
    "huge-int.jsonl": (_jl([{"text": t, "n": 1} for t in GOOD] + [{"text": "x", "n": 10**30}])
                       .encode(), ("line 61", "'n'", "64-bit")),
    "huge-digits.jsonl": ((_jl([{"text": "x"}]) + '{"text": "x", "n": ' + "9" * 5000 + "}\n")
                          .encode(), ("line 2", "digits")),
    "nan.jsonl": ((_jl([{"text": "x", "v": 1.0}]) + '{"text": "y", "v": NaN}\n').encode(),
                  ("line 2", "NaN")),
    "not-utf8.jsonl": (b'{"text": "caf\xe9"}\n', ("line 1", "UTF-8")),
    "empty.jsonl": (b"", ("empty",)),
    "array.jsonl": (b"[1, 2]\n", ("line 1", "JSON object")),
    "empty-object.jsonl": (_jl([{"text": t, "meta": {}} for t in GOOD]).encode(),
                           ("'meta'", "empty objects")),
    "dup-columns.csv": (("text,text,b\n" + "".join(f"t{i},u{i},{i}\n" for i in range(60)))
                        .encode(), ("header", "'text'", "more than once")),
    "corrupt.parquet": (b"PAR1" + b"\0garbage" * 4 + b"PAR1", ("Parquet",)),
}


def _one_error_line(r, *needles: str) -> str:
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.output, r.output
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    out = {}
    for name, (data, _) in CASES.items():
        (d / name).write_bytes(data)
        out[name] = d / name
    (d / "real.jsonl").write_text(_jl([{"text": t} for t in GOOD]))
    return out


COMMANDS = {
    "poison scan": lambda f, real: ["poison", "scan", str(f)],
    "audit --synthetic": lambda f, real: ["audit", "--real", str(real), "--synthetic", str(f),
                                          "--kind", "text", "--no-embeddings", "--ppl-model",
                                          "none"],
    "audit --real": lambda f, real: ["audit", "--real", str(f), "--synthetic", str(real),
                                     "--kind", "text", "--no-embeddings", "--ppl-model", "none"],
    "watermark detect": lambda f, real: ["watermark", "detect", str(f)],
    "detect": lambda f, real: ["detect", str(f), "--json", "d.json"],
    "collapse --corpus": lambda f, real: ["collapse", "--corpus", str(f), "--out", "lab",
                                          "--generations", "2", "--policies", "replace"],
    "run": lambda f, real: ["run", str(_pipeline_for(f)), "--out", "run"],
}


def _pipeline_for(data: Path) -> Path:
    """A one-step pipeline over ``data``, written beside it (not in the working folder)."""
    p = data.parent / f"{data.name}.pipeline.yaml"
    p.write_text(json.dumps({"name": "fuzz", "input": str(data), "steps": [
        {"type": "quality", "min_words": 1, "rules": ["too_short"]}]}))
    return p


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_is_one_error_line(cases, case, command, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_WATERMARK_KEY", "k" * 32)
    monkeypatch.chdir(tmp_path)
    f = cases[case]
    r = runner.invoke(app, COMMANDS[command](f, f.parent / "real.jsonl"))
    line = _one_error_line(r, *CASES[case][1])
    assert f.name in line
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_provenance_commands_on_corrupt_shards(cases):
    f = cases["corrupt.parquet"]
    for cmd in (["provenance", "manifest", str(f)], ["provenance", "show", str(f)]):
        _one_error_line(runner.invoke(app, cmd), f.name, "Parquet")


def test_infinite_and_duplicate_columns_in_a_table_audit(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(60)))
    inf = tmp_path / "inf.csv"
    inf.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(60)) + "inf,3\n")
    r = runner.invoke(app, ["audit", "--real", str(real), "--synthetic", str(inf)])
    _one_error_line(r, "inf.csv", "row 60", "'a'", "infinite")


def test_a_long_csv_cell_is_read(tmp_path):
    f = tmp_path / "long.csv"
    f.write_text("a,text\n1," + "x" * (2 << 20) + "\n2,short\n")
    t = read_csv(f)
    assert t.num_rows == 2 and len(t.column("text")[0].as_py()) == 2 << 20


def test_a_users_id_column_is_kept_and_poison_scan_reads_it(tmp_path):
    f = tmp_path / "with-id.jsonl"
    f.write_text(_jl([{"id": 1000 + i, "text": t, "origin": "forum"}
                      for i, t in enumerate(GOOD)]))
    t = read_records(f)
    assert t.column("id").to_pylist() == [str(1000 + i) for i in range(60)]
    assert t.column("user_origin").to_pylist() == ["forum"] * 60
    assert set(t.column("origin").to_pylist()) == {"real"}
    r = runner.invoke(app, ["poison", "scan", str(f), "--json", str(tmp_path / "p.json"),
                            "--quarantine", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    ids = [i for name in ("clean", "quarantine")
           for i in pq.read_table(tmp_path / "q" / f"{name}.parquet").column("id").to_pylist()]
    assert sorted(ids) == sorted(str(1000 + i) for i in range(60))
    flagged = json.loads((tmp_path / "p.json").read_text())["flagged_records"]
    assert all(str(x["id"]).startswith("10") for x in flagged)
    # repeated ids are not record ids: they stay content, renamed
    f.write_text(_jl([{"id": i % 3, "text": t} for i, t in enumerate(GOOD)]))
    t = read_records(f)
    assert t.column("user_id").to_pylist()[:4] == [0, 1, 2, 0]
    assert len(set(t.column("id").to_pylist())) == 60


def test_a_generated_table_audits_against_its_real_table(tmp_path):
    real = EXAMPLES / "data" / "penguins.csv"
    out = tmp_path / "syn.parquet"
    r = runner.invoke(app, ["generate", "--model", "gaussian-copula", "--table", str(real),
                            "--n", "300", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "digital_source_type" in pq.read_schema(out).names
    r = runner.invoke(app, ["audit", "--real", str(real), "--synthetic", str(out),
                            "--json", str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    names = {m["name"] for m in json.loads((tmp_path / "a.json").read_text())["metrics"]}
    assert not any("digital_source_type" in n for n in names)


# ---- property-based fuzzing -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(alphabet=st.characters(codec="utf-16", max_codepoint=0xFFFF), max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4), max_leaves=12)
json_lines = st.lists(
    st.one_of(st.dictionaries(st.sampled_from(["text", "id", "origin", "x", "generation"]),
                              json_values, max_size=4).map(lambda d: json.dumps(d)),
              json_values.map(lambda v: json.dumps(v)),
              st.text(max_size=30)), min_size=0, max_size=6)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(lines=json_lines)
def test_fuzz_jsonl_reader_raises_only_input_errors(lines, tmp_path):
    f = tmp_path / "f.jsonl"
    f.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    for reader in (lambda: read_jsonl(f), lambda: read_records(f),
                   lambda: read_records(f, text_column=None)):
        try:
            t = reader()
        except InputError as e:
            assert "f.jsonl" in str(e) and "\n" not in str(e)
        else:
            assert isinstance(t, pa.Table) and t.num_rows >= 1


csv_cells = st.text(alphabet=string.printable.replace("\r", "") + "é∞", max_size=8)


@FUZZ
@given(header=st.lists(csv_cells, min_size=1, max_size=4),
       rows=st.lists(st.lists(csv_cells, min_size=0, max_size=5), max_size=5))
def test_fuzz_csv_reader_raises_only_input_errors(header, rows, tmp_path):
    f = tmp_path / "f.csv"
    f.write_text("\n".join([",".join(header)] + [",".join(r) for r in rows]), encoding="utf-8")
    try:
        t = read_records(f, text_column=None)
    except InputError as e:
        assert "f.csv" in str(e) and "\n" not in str(e)
    else:
        assert t.num_rows >= 1


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=json_lines, command=st.sampled_from(["poison scan", "audit --synthetic", "run"]))
def test_fuzz_commands_never_show_a_traceback(lines, command, tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    f = d / "f.jsonl"
    f.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    real = d / "real.jsonl"
    real.write_text(_jl([{"text": t} for t in GOOD]))
    with contextlib.chdir(d):  # commands that write, write here
        r = runner.invoke(app, COMMANDS[command](f, real))
    assert r.exception is None or isinstance(r.exception, SystemExit), \
        f"{type(r.exception).__name__}: {r.exception}"
    if r.exit_code not in (0, 1):
        _one_error_line(r)


# the other entry points, on the from-scratch test model where one is needed (fast)
MODEL_COMMANDS = {
    "detect": lambda f, m: ["detect", str(f), "--model", str(m), "--human", str(f),
                            "--max-tokens", "16"],
    "watermark detect": lambda f, m: ["watermark", "detect", str(f), "--model", str(m)],
    "generate --prompts": lambda f, m: ["generate", "--model", str(m), "--prompts", str(f),
                                        "--n", "2", "--max-new-tokens", "4",
                                        "--out", "o.jsonl"],
    "generate --table": lambda f, m: ["generate", "--model", "gaussian-copula", "--table",
                                      str(f), "--n", "5", "--out", "t.jsonl"],
    "provenance show": lambda f, m: ["provenance", "show", str(f)],
    "provenance manifest": lambda f, m: ["provenance", "manifest", str(f)],
    "provenance verify": lambda f, m: ["provenance", "verify", str(f)],
}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=json_lines, command=st.sampled_from(sorted(MODEL_COMMANDS)))
def test_fuzz_other_entry_points_never_show_a_traceback(lines, command, tiny_model,
                                                        tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    f = d / "f.jsonl"
    f.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    with contextlib.chdir(d), pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHLOOP_WATERMARK_KEY", "k" * 32)
        r = runner.invoke(app, MODEL_COMMANDS[command](f, tiny_model))
    assert r.exception is None or isinstance(r.exception, SystemExit), \
        f"{command}: {type(r.exception).__name__}: {r.exception}"
    if r.exit_code not in (0, 1):
        _one_error_line(r)


def test_a_field_only_later_records_have_is_kept(tmp_path):
    f = tmp_path / "f.jsonl"
    f.write_text(_jl([{"text": "a"}, {"text": "b", "label": "x"}]))
    t = read_jsonl(f)
    assert t.column("label").to_pylist() == [None, "x"]
    f.write_text(_jl([{"text": "a", "n": 1}, {"text": "b", "n": "two"}]))
    with pytest.raises(InputError, match="field 'n'"):
        read_jsonl(f)


# ---- YAML, run folders, file modes ---------------------------------------------------------

BOMB = "".join(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join(
    [f"*{chr(96 + i)}"] * 9 if i else ['"lol"'] * 9) + "]\n" for i in range(9)) + "steps: [*i]\n"


@pytest.mark.parametrize("text, message", [
    (BOMB, "aliases expand to more than"),
    ("name: x\nsteps: []\nsteps: [{type: quality}]\n", "line 3, column 1: duplicate key 'steps'"),
    ("a: &a [*a]\n", "contains it"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
])
def test_hostile_yaml_is_refused_in_one_line(tmp_path, text, message):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    r = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "run")])
    _one_error_line(r, "p.yaml", message)
    assert not (tmp_path / "run").exists()
    q = tmp_path / "taxonomy" / "a"
    q.mkdir(parents=True)
    (q / "qna.yaml").write_text(text)
    r = runner.invoke(app, ["generate", "--model", "smollm2-135m", "--taxonomy",
                            str(tmp_path / "taxonomy"), "--n", "2",
                            "--out", str(tmp_path / "o.jsonl")])
    _one_error_line(r, "qna.yaml")


def test_a_huge_yaml_file_is_refused(tmp_path):
    from synthloop.records.io import MAX_YAML_BYTES

    p = tmp_path / "p.yaml"
    p.write_text("# x\n" * (MAX_YAML_BYTES // 4 + 1))
    _one_error_line(runner.invoke(app, ["run", str(p)]), "p.yaml", "over the limit")


def _quality_pipeline(folder: Path) -> Path:
    """A one-step pipeline over the example seeds that every record passes."""
    p = folder / "good.yaml"
    p.write_text(json.dumps({"name": "t", "input": str(EXAMPLES / "data" / "austen_seeds.jsonl"),
                             "steps": [{"type": "quality", "min_words": 3,
                                        "rules": ["too_short"]}]}))
    return p


def test_a_run_that_fails_before_committing_leaves_nothing_behind(tmp_path):
    seeds = EXAMPLES / "data" / "austen_seeds.jsonl"
    out = tmp_path / "run"
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"name": "t", "input": str(seeds), "steps": [
        {"type": "verify-json", "field": "text", "schema_file": "missing.json"}]}))
    r = runner.invoke(app, ["run", str(bad), "--out", str(out)])
    _one_error_line(r, "missing.json")
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # a folder the user made: only run files go
    _one_error_line(runner.invoke(app, ["run", str(bad), "--out", str(out)]), "missing.json")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    good = _quality_pipeline(tmp_path)
    r = runner.invoke(app, ["run", str(good), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert pq.read_table(out / "data").num_rows > 0


def test_outputs_follow_the_umask_and_orphan_temporaries_are_swept(tmp_path):
    import os

    from synthloop.records.io import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic("x", tmp_path / "a.txt")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        write_text_atomic("x", tmp_path / "b.txt")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
    good = _quality_pipeline(tmp_path)
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(good), "--out", str(out)]).exit_code == 0
    orphan = out / "stages" / "01-quality" / ".part-00000.parquet.abc123.tmp"
    orphan.write_bytes(b"half")  # what kill -9 during a write leaves
    assert runner.invoke(app, ["run", str(good), "--out", str(out)]).exit_code == 0
    assert not orphan.exists()


def test_pandas_reads_a_dataset_folder_with_its_manifest(tmp_path):
    import pandas as pd

    good = _quality_pipeline(tmp_path)
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(good), "--out", str(out)]).exit_code == 0
    r = runner.invoke(app, ["provenance", "manifest", str(out / "data")])
    assert r.exit_code == 0, r.output
    assert (out / "data" / "_croissant.json").exists()
    assert len(pd.read_parquet(out / "data")) == pq.read_table(out / "data").num_rows > 0


def test_max_new_tokens_beyond_the_models_context_is_one_error_line(tiny_model, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(_jl([{"prompt": "Once upon a time"}]))
    out = tmp_path / "o.jsonl"
    r = runner.invoke(app, ["generate", "--model", str(tiny_model), "--prompts", str(prompts),
                            "--n", "1", "--max-new-tokens", "600", "--out", str(out)])
    _one_error_line(r, "max_new_tokens is 600", "at most 512 positions")
    assert list(tmp_path.iterdir()) == [prompts]


@pytest.mark.parametrize("step, message", [
    ({"type": "generate", "watermark": {"key_file": "no-such.key"}}, "no-such.key"),
    ({"type": "generate", "backend": {"model": "m", "base_url": "http://127.0.0.1:9/v1",
                                      "api_key_env": "SYNTHLOOP_TEST_UNSET_KEY"}},
     "SYNTHLOOP_TEST_UNSET_KEY"),
    ({"type": "mix", "policy": "accumulate", "real": "nowhere.parquet"}, "nowhere.parquet"),
    ({"type": "verify-json", "schema": {"type": 5}}, "invalid JSON schema"),
    ({"type": "generate", "template": "{{ unclosed"}, "template"),
])
def test_config_errors_are_found_before_anything_runs(tmp_path, monkeypatch, step, message):
    monkeypatch.delenv("SYNTHLOOP_WATERMARK_KEY", raising=False)
    monkeypatch.delenv("SYNTHLOOP_TEST_UNSET_KEY", raising=False)
    seeds = EXAMPLES / "data" / "austen_seeds.jsonl"
    p = tmp_path / "p.yaml"
    p.write_text(json.dumps({"name": "t", "input": str(seeds), "steps": [step]}))
    r = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "run")])
    _one_error_line(r, message)
    assert not (tmp_path / "run").exists()



def test_library_errors_name_fields_and_the_cli_shows_flags(tmp_path):
    from synthloop.errors import ConfigError
    from synthloop.generate.oneoff import generate_dataset

    with pytest.raises(ConfigError) as e:
        generate_dataset("m", n=0, out=tmp_path / "o.jsonl", prompts=tmp_path / "p.jsonl")
    assert str(e.value) == "n must be ≥ 1, got 0" and e.value.fields == ("n",)
    r = runner.invoke(app, ["generate", "--model", "m", "--n", "0", "--prompts",
                            str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "o.jsonl")])
    _one_error_line(r, "--n must be ≥ 1, got 0")
