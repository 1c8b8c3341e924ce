"""Verified synthetic data: the arithmetic task and its verifier, the verifier and
self-confidence filters, and the recursive loop end to end (small, seconds on CPU)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_audit_cli import _one_error_line, _rendered_dom

from synthloop.collapse.tasks import ArithmeticTask
from synthloop.curate.policies import mix, parse_policy, select
from synthloop.errors import ConfigError
from synthloop.records import Generator, text_records
from synthloop.records.io import read_parquet


def test_arithmetic_task_verifier_and_split():
    task = ArithmeticTask(2)
    assert task.record(7, 45) == "07+45=052" and task.record_chars == 9
    assert task.verify("07+45=052")
    assert not task.verify("07+45=053")  # wrong sum
    assert not task.verify("07+45=52")  # wrong length
    assert not task.verify("07+45=0x2") and not task.verify("07+45-052")
    s1, s2 = task.split(100, 50, seed=3), task.split(100, 50, seed=3)
    assert s1 == s2 and task.split(100, 50, seed=4) != s1
    sets = [set(s1.train), set(s1.test), set(s1.pool)]
    assert sum(map(len, sets)) == task.n_problems == 10_000
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert task.accuracy([(1, 2), (3, 4)], ["003", "008"]) == 0.5
    with pytest.raises(ConfigError, match="too few"):
        ArithmeticTask(1).split(60, 40, seed=0)


def _candidates(n: int, wrong_every: int) -> pa.Table:
    task = ArithmeticTask(2)
    texts, ok = [], []
    for i in range(n):
        a, b = i % 100, (7 * i) % 100
        ans = task.answer(a, b) if i % wrong_every else f"{(a + b + 1) % 1000:03d}"
        texts.append(task.record(a, b, ans))
        ok.append(task.verify(texts[-1]))
    gen = Generator(model="m", weights_sha256="0" * 64, decoding={}, seed=0)
    return text_records(texts, origin="synthetic", generation=1, generator=gen,
                        extra={"verified": ok, "confidence": np.linspace(-1, 0, n).tolist(),
                               "gen0_ppl": [1.0] * n})


def test_verified_filters_keep_what_the_verifier_accepts():
    cands = _candidates(200, wrong_every=3)  # rows 0, 3, 6, … are wrong: 67 of 200
    wrong = ~np.array(cands.column("verified").to_pylist())
    exact = parse_policy("filter:verified:0.5")
    kept, rejected = select(exact, cands, 100)
    assert kept.num_rows == 100 and all(kept.column("verified").to_pylist())
    assert set(rejected.column("drop_reason").to_pylist()) == {
        "filter:verified:0.5: verifier: answer rejected",
        "filter:verified:0.5: verifier: accepted beyond the 100 needed"}
    # fewer correct than needed: the set is smaller, never topped up with wrong answers
    few, _ = select(exact, cands.slice(0, 60), 100)
    assert few.num_rows == int((~wrong[:60]).sum())
    # an imperfect verifier lets a share of the wrong answers through, the same ones each time
    noisy = parse_policy("filter:verified@0.5:0.5")
    k1, _ = select(noisy, cands, 150)
    k2, _ = select(noisy, cands, 150)
    assert k1.column("id").to_pylist() == k2.column("id").to_pylist()
    let_through = k1.num_rows - sum(k1.column("verified").to_pylist())
    assert 0.3 * wrong.sum() < let_through < 0.7 * wrong.sum()
    none_through, _ = select(parse_policy("filter:verified@0:0.5"), cands, 150)
    assert all(none_through.column("verified").to_pylist())
    # self-confidence keeps the answers the model was surest of (confidence rises with row)
    conf, _ = select(parse_policy("filter:self-confidence:0.5"), cands, 100)
    assert min(conf.column("confidence").to_pylist()) >= np.median(
        cands.column("confidence").to_pylist()) - 1e-9
    # a filter's short set trains as it is
    real = text_records([f"r{i}" for i in range(100)])
    assert mix(exact, real, {1: few}, 1, np.random.default_rng(0)).num_rows == few.num_rows


def test_filter_spec_errors_name_the_problem():
    for spec, msg in [("filter:verified@1.5:0.5", "out of range"),
                      ("filter:ppl-top@0.3:0.2", "takes no '@'"),
                      ("filter:verifed:0.5", "unknown filter 'verifed'"),
                      ("filter:verified@x:0.5", "not a number")]:
        with pytest.raises(ConfigError, match=msg):
            parse_policy(spec)
    text_only = text_records(["a", "b"], origin="synthetic", generation=1,
                             generator=Generator(model="m", weights_sha256="0" * 64,
                                                 decoding={}, seed=0))
    with pytest.raises(ConfigError, match="needs a 'verified' column"):
        select(parse_policy("filter:verified:0.5"), text_only, 1)


def _small_cfg(out, **kw):
    from synthloop.collapse.verified import TaskCollapseConfig
    from synthloop.models.params import TrainParams

    # the default policies: replace, accumulate, verified, verified@0.5, self-confidence
    fields = {"train_problems": 120, "test_problems": 60, "generations": 3, "seeds": 1,
              "train": TrainParams(epochs=20, batch_size=32, lr=3e-3), **kw}
    return TaskCollapseConfig(out=str(out), **fields)


def test_verified_loop_end_to_end_and_resume(tmp_path):
    """A model too small to learn addition: the loop's bookkeeping, and a verifier that
    finds nothing correct ends its chain with a recorded reason instead of failing."""
    from synthloop.collapse.verified import run_task_collapse

    out = tmp_path / "run"
    res = run_task_collapse(_small_cfg(out))
    task = ArithmeticTask(2)
    rows = {(r["policy"], r["generation"]): r for r in res.runs}
    assert len(rows) == 5 * 3
    for r in res.runs:
        if "stopped" not in r:
            assert 0 <= r["task_accuracy"] <= 1 and r["test_ppl"] > 1
            assert 0 <= r["sample_accuracy"] <= 1
    # what the verifier kept is correct, and every answer is accounted for
    for gen in range(2):
        d = out / "runs" / "filter_verified_0.5" / "seed0" / f"gen{gen}"
        kept = pq.read_table(d / "synthetic.parquet").column("text").to_pylist()
        assert all(task.verify(t) for t in kept)
        rej = read_parquet(d / "rejected.parquet")
        assert rej.num_rows + len(kept) == 240 and "drop_reason" in rej.column_names
    assert rows[("filter:verified:0.5", 1)]["train_correct_share"] == 1.0
    assert rows[("replace", 1)]["train_correct_share"] < 0.5  # it trains on wrong answers
    stopped = [r for r in res.runs if "stopped" in r]
    assert stopped and {r["policy"] for r in stopped} == {"filter:verified:0.5"}
    assert any(f["holds"] is False and "keeps enough data" in f["expectation"]
               for f in res.findings)
    # synthetic answers carry their lineage: generation k+1 written by model k
    syn = read_parquet(out / "runs" / "replace" / "seed0" / "gen1" / "synthetic.parquet")
    assert set(syn.column("generation").to_pylist()) == {2}
    assert set(syn.column("origin").to_pylist()) == {"synthetic"}
    results = json.loads(res.results_path.read_text())
    assert results["task"]["problems"] == 10_000
    assert {f["expectation"].split(" ")[0] for f in results["findings"]} >= {
        "replace", "accumulate", "filter:verified:0.5", "filter:verified@0.5:0.5"}
    # rerun: nothing retrained, same rows
    stamp = (out / "runs" / "replace" / "seed0" / "gen2" / "metrics.json").stat().st_mtime_ns
    again = run_task_collapse(_small_cfg(out), report=False)
    assert again.runs == res.runs
    assert (out / "runs" / "replace" / "seed0" / "gen2" / "metrics.json").stat().st_mtime_ns \
        == stamp
    # a changed task is a different run
    with pytest.raises(ConfigError, match="different 'test_problems'"):
        run_task_collapse(_small_cfg(out, test_problems=70))
    dom = _rendered_dom(res.report_path)
    assert "Verified synthetic data" in dom and dom.count("main-svg") >= 4


def test_verifier_keeps_accuracy_where_replace_loses_it(tmp_path):
    """The default recipe (a model that learns addition): one generation on from real data,
    training on verified answers beats training on the raw ones."""
    from synthloop.collapse.verified import TaskCollapseConfig, run_task_collapse

    res = run_task_collapse(TaskCollapseConfig(
        out=str(tmp_path / "v"), generations=2, seeds=1,
        policies="replace,filter:verified:0.5"), report=False)
    rows = {(r["policy"], r["generation"]): r for r in res.runs}
    gen0 = rows[("replace", 0)]
    assert gen0["task_accuracy"] > 0.8  # it learned the task from the real problems
    assert gen0["sample_accuracy"] < 0.95  # sampling writes wrong answers
    rep, ver = rows[("replace", 1)], rows[("filter:verified:0.5", 1)]
    assert rep["train_correct_share"] == pytest.approx(gen0["sample_accuracy"], abs=0.05)
    assert ver["train_correct_share"] == 1.0
    assert ver["task_accuracy"] > rep["task_accuracy"]


def test_same_seed_same_answers(tmp_path):
    from synthloop.collapse.verified import run_task_collapse

    cfg = dict(policies="replace,filter:verified:0.5")
    a = run_task_collapse(_small_cfg(tmp_path / "a", **cfg).model_copy(
        update={"generations": 2}), report=False)
    b = run_task_collapse(_small_cfg(tmp_path / "b", **cfg).model_copy(
        update={"generations": 2}), report=False)
    for run in (a, b):
        assert len(run.runs) == 4
    strip = ("train_seconds", "generate_seconds")
    assert [{k: v for k, v in r.items() if k not in strip} for r in a.runs] == \
        [{k: v for k, v in r.items() if k not in strip} for r in b.runs]
    ta = read_parquet(tmp_path / "a/runs/replace/seed0/gen1/synthetic.parquet")
    tb = read_parquet(tmp_path / "b/runs/replace/seed0/gen1/synthetic.parquet")
    assert ta.column("text").to_pylist() == tb.column("text").to_pylist()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthloop.cli", "collapse-verified", *args],
                          capture_output=True, text=True)


def test_collapse_verified_cli_bad_input(tmp_path):
    _one_error_line(_cli("--out", str(tmp_path / "x"), "--digits", "1",
                         "--train-problems", "90", "--test-problems", "20"), "digit")
    _one_error_line(_cli("--out", str(tmp_path / "y"), "--policies", "filter:verified@2:0.5"),
                    "out of range")
    _one_error_line(_cli("--out", str(tmp_path / "z"), "--model", "smollm2-135m"),
                    "from-scratch")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
