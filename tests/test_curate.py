"""Curation steps: filters, dedup, scorers, verifiers, diversity, mixing policies."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from synthloop.curate.filters import (
    DiversitySelect,
    ExactDedup,
    MaxDepth,
    MinHashDedup,
    Mix,
    QualityFilter,
    Threshold,
)
from synthloop.curate.policies import mix_dataset, parse_policy
from synthloop.curate.verify import (
    VerifyArithmetic,
    VerifyJSON,
    VerifyPython,
    check_arithmetic,
    parse_score,
)
from synthloop.errors import ConfigError
from synthloop.pipeline.step import StepContext, reason_class
from synthloop.records.schema import Generator, text_records
from synthloop.sandbox import Limits, available_isolation, run_python

GEN = Generator("m", "0" * 64, {}, 0)


def ctx(seed: int = 0, **kw) -> StepContext:
    return StepContext(seed=seed, **kw)


def recs(texts, origin="synthetic", generation=1, **extra) -> pa.Table:
    return text_records(texts, origin=origin, generation=generation if origin != "real" else 0,
                        generator=GEN if origin == "synthetic" else None,
                        created_at="2026-01-01T00:00:00+00:00", extra=extra or None)


PROSE = ("It is a truth universally acknowledged that a single man in possession of a good "
         "fortune must be in want of a wife, and that the neighbours have settled it.")


def test_quality_filter_names_the_rules_broken():
    t = recs([PROSE, "buy buy buy buy buy buy buy buy", "ok"])
    out = QualityFilter(min_words=5).apply(t, ctx())
    assert out.kept.column("text").to_pylist() == [PROSE]
    assert "top_2gram" in out.reasons[0] or "no_stop_words" in out.reasons[0]
    assert out.reasons[1].startswith("quality:") and "too_short" in out.reasons[1]


def test_exact_dedup_keeps_the_first_and_names_it():
    t = recs([PROSE, "Another line of text here.", PROSE.upper(), "  " + PROSE + "  "])
    out = ExactDedup().apply(t, ctx())
    first_id = t.column("id")[0].as_py()
    assert out.kept.num_rows == 2
    assert out.reasons == [f"exact duplicate of {first_id}"] * 2


def test_minhash_dedup_drops_near_copies_and_keeps_distinct_texts(austen_text):
    paras = [" ".join(p.split()) for p in austen_text.split("\n\n") if len(p.split()) >= 40]
    base = paras[:50]
    rng = np.random.default_rng(0)
    edited = []
    for p in base[:10]:  # one word in 40 replaced: Jaccard of 5-shingles stays ≈ 0.8+
        w = p.split()
        w[int(rng.integers(len(w)))] = "zzz"
        edited.append(" ".join(w))
    t = recs(base + edited)
    out = MinHashDedup(threshold=0.6).apply(t, ctx())
    dropped = set(out.dropped.column("text").to_pylist())
    assert dropped == set(edited)
    ids = t.column("id").to_pylist()
    for r, e in zip(out.reasons, out.dropped.column("text").to_pylist(), strict=True):
        assert f"near-duplicate of {ids[edited.index(e)]}" in r


def test_threshold_bounds_and_missing():
    t = recs(["a b c", "d e f", "g h i"]).append_column("ppl", pa.array([5.0, 50.0, None]))
    out = Threshold(column="ppl", max=10).apply(t, ctx())
    assert out.kept.num_rows == 1
    assert out.reasons == ["ppl 50 > max 10", "ppl missing"]
    with pytest.raises(ConfigError, match="give min, max or both"):
        Threshold(column="ppl")
    with pytest.raises(Exception, match="no column"):
        Threshold(column="judge", min=1).apply(t, ctx())


def test_max_depth_uses_the_generation_column():
    t = pa.concat_tables([recs(["x y z"], generation=1), recs(["p q r"], generation=3)])
    out = MaxDepth(k=2).apply(t, ctx())
    assert out.kept.column("generation").to_pylist() == [1]
    assert out.reasons == ["generation 3 > max depth 2"]


@pytest.mark.parametrize("spec,n_real,real_kept,syn_kept", [
    ("replace", 100, 0, 30), ("accumulate", 100, 100, 30), ("max-depth:1", 100, 100, 20),
    # keep-real holds the set at the real set's size; too few synthetic records shrink it
    ("keep-real:0.25", 100, 10, 30), ("keep-real:0.5", 40, 20, 20),
    # real-share keeps every synthetic record and adds real ones for the share
    ("real-share:0.25", 100, 10, 30), ("real-share:0.5", 40, 30, 30),
])
def test_mix_dataset_policies(spec, n_real, real_kept, syn_kept):
    real = recs([f"real {i}" for i in range(n_real)], origin="real")
    syn = pa.concat_tables([recs([f"syn {i}" for i in range(20)], generation=1),
                            recs([f"deep {i}" for i in range(10)], generation=2)])
    mixed, dropped, reasons = mix_dataset(parse_policy(spec), real, syn,
                                          np.random.default_rng(0))
    origins = mixed.column("origin").to_pylist()
    assert origins.count("real") == real_kept and origins.count("synthetic") == syn_kept
    assert dropped.num_rows == len(reasons) == n_real + 30 - mixed.num_rows


def test_a_policy_name_means_the_same_data_in_the_lab_and_the_pipeline():
    from synthloop.curate.policies import mix

    real = recs([f"real {i}" for i in range(50)], origin="real")
    syn = recs([f"syn {i}" for i in range(50)], generation=1)
    for spec in ("keep-real:0.3", "real-share:0.3", "replace", "accumulate"):
        lab = mix(parse_policy(spec), real, {1: syn}, 1, np.random.default_rng(5))
        pipe, _, _ = mix_dataset(parse_policy(spec), real, syn, np.random.default_rng(5))
        assert sorted(lab.column("text").to_pylist()) == \
            sorted(pipe.column("text").to_pylist()), spec


def test_mix_step_reads_real_data_and_refuses_collapse_only_policies(tmp_path):
    from synthloop.records.io import write_parquet

    real_path = write_parquet(recs([f"real {i}" for i in range(40)], origin="real"),
                              tmp_path / "real.parquet")
    syn = recs([f"syn {i}" for i in range(10)])
    out = Mix(policy="keep-real:0.5").apply(syn, ctx(source=real_path))
    assert out.kept.column("origin").to_pylist().count("real") == 10
    assert len(out.reasons) == 30
    with pytest.raises(ConfigError, match="collapse-lab policy"):
        Mix(policy="accumulate-subsample")
    with pytest.raises(ConfigError):
        parse_policy("max-depth:x")


def test_diversity_selection_keeps_one_of_each_cluster():
    texts = ["The cat sat on the mat by the fire."] * 5 + \
        ["Quarterly revenue rose four percent on strong bond sales."] * 5 + \
        ["Mix the flour with two eggs and a cup of milk."] * 5
    t = recs([f"{s} ({i})" for i, s in enumerate(texts)])
    out = DiversitySelect(n=3).apply(t, ctx(seed=1))
    kept = out.kept.column("text").to_pylist()
    assert {k.split(" (")[0] for k in kept} == set(texts)
    assert all(r.startswith("diversity: cosine") for r in out.reasons)


def test_arithmetic_verifier():
    assert check_arithmetic("What is 12 + 30?", "12 + 30 = 42.") is None
    assert check_arithmetic("What is 1,200 * 3?", "It is 3,600") is None
    assert "wrong answer" in check_arithmetic("What is 7 + 8?", "The sum is 16.")
    assert check_arithmetic("Name a colour.", "Blue") == "no expression"
    t = recs(["a", "b", "c"], instruction=["What is 2 + 2?", "What is 9 - 3?", "Say hi"],
             response=["4", "5", "hi"])
    out = VerifyArithmetic().apply(t, ctx())
    assert out.kept.num_rows == 2 and "9 - 3 = 6" in out.reasons[0]
    strict = VerifyArithmetic(require_expression=True).apply(t, ctx())
    assert strict.kept.num_rows == 1


def test_json_verifier_with_schema():
    schema = {"type": "object", "required": ["name", "age"],
              "properties": {"age": {"type": "integer", "minimum": 0}}}
    t = recs(['{"name": "a", "age": 3}', '```json\n{"name": "b", "age": 4}\n```',
              '{"name": "c"}', '{"name": "d", "age": -1}', "not json"])
    out = VerifyJSON.model_validate({"schema": schema}).apply(t, ctx())
    assert out.kept.num_rows == 2
    assert "'age' is a required property" in out.reasons[0]
    assert "minimum" in out.reasons[1] and "$.age" in out.reasons[1]
    assert out.reasons[2].startswith("json: invalid JSON")
    with pytest.raises(ConfigError, match="invalid JSON schema"):
        VerifyJSON.model_validate({"schema": {"type": 5}}).apply(t, ctx())


def test_python_verifier_runs_code_sandboxed():
    def why(code: str, **kw) -> str | None:
        return run_python(code, Limits(**kw), minimum="process").reason()

    assert why("assert sum([1, 2]) == 3") is None
    assert "AssertionError" in why("assert 1 == 2")
    assert "timed out" in why("while True: pass", timeout_s=1)
    blocked = why("import socket\nsocket.create_connection(('127.0.0.1', 9))")
    assert "sandbox: socket" in blocked
    assert "sandbox: import _posixsubprocess" in why("import subprocess\nsubprocess.run(['ls'])")
    t = recs(["```python\ndef add(a, b):\n    return a + b\n```",
              "def add(a, b):\n    return a - b"],
             tests=["assert add(2, 3) == 5"] * 2)
    out = VerifyPython(tests_field="tests", timeout_s=10,
                       isolation=available_isolation()).apply(t, ctx())
    assert out.kept.num_rows == 1 and "AssertionError" in out.reasons[0]


def test_judge_score_parsing():
    assert parse_score("Score: 4") == 4
    assert parse_score("I'd give it a 3 out of 5") == 3
    assert parse_score("Score: 9") is None
    assert parse_score("no idea") is None


def test_reason_class_blanks_numbers_and_ids():
    assert reason_class("ppl 93.49 > max 40") == "ppl # > max #"
    assert reason_class("near-duplicate of " + "a" * 64 + " (Jaccard ≈ 0.86)") == \
        "near-duplicate of <id> (Jaccard ≈ #)"
