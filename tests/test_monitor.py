"""``synthloop monitor``: quiet on fresh real data, warns on the collapse lab's ``replace``
generations, caches per-generation audits, splits a mixed dataset by depth, one-line errors."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import austen
from test_audit_cli import _one_error_line, _rendered_dom

from synthloop.audit import AuditResult, MetricResult, TableAuditConfig, TextAuditConfig, audit
from synthloop.errors import ConfigError, InputError
from synthloop.monitor import Generation, TrendRules, load_generations, monitor
from synthloop.monitor.trends import shortfall, trend_warnings

FAST = TextAuditConfig(embeddings=False, ppl_model=None)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthloop.cli", "monitor", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    text = austen("persuasion") + "\n\n" + austen("northangerabbey")
    pars = [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) >= 8]
    random.Random(0).shuffle(pars)
    return pars


def _jsonl(path: Path, docs: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """A small collapse lab on real prose: replace and accumulate, 5 generations."""
    from synthloop.collapse import CollapseConfig, run_collapse
    from synthloop.models.params import GenParams, TrainParams

    d = tmp_path_factory.mktemp("lab")
    corpus = d / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(austen("persuasion")[:120000], encoding="utf-8")
    cfg = CollapseConfig(corpus=str(corpus), out=str(d / "run"), generations=5,
                         policies="replace,accumulate", seeds=1, block_tokens=48,
                         prompt_tokens=16, new_tokens=48, max_train_blocks=200,
                         max_test_blocks=100, vocab_size=500,
                         train=TrainParams(epochs=3, batch_size=8, seq_len=64, lr=3e-3),
                         decoding=GenParams(batch_size=64))
    run_collapse(cfg, report=False)
    return d / "run"


def test_fresh_real_holdouts_raise_nothing(paragraphs, tmp_path):
    """Five generations that are each a fresh sample of the same real text: no level warning,
    no trend warning — with the embedding metrics on too."""
    n = 150
    real, hold = paragraphs[:400], paragraphs[400:400 + n]
    gens = [paragraphs[400 + n * (i + 1):400 + n * (i + 2)] for i in range(5)]
    res = monitor(real, gens, hold, config=TextAuditConfig(ppl_model=None))
    assert res.warnings == [], [w.message for w in res.warnings]
    assert res.labels == ["gen0", "gen1", "gen2", "gen3", "gen4"]
    assert {"recall", "vendi_score", "coverage"} <= set(res.metric_names())
    assert res.depth_shares is None  # plain texts carry no lineage
    # the same from the command line, gating on warnings
    paths = [_jsonl(tmp_path / f"g{i}.jsonl", g) for i, g in enumerate(gens)]
    js = tmp_path / "m.json"
    r = _cli("--real", str(_jsonl(tmp_path / "real.jsonl", real)), "--holdout",
             str(_jsonl(tmp_path / "hold.jsonl", hold)), *map(str, paths), "--no-embeddings",
             "--ppl-model", "none", "--no-cache", "--json", str(js), "--fail-on-warning")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(js.read_text())
    assert data["warnings"] == [] and len(data["generations"]) == 5
    assert len(data["metrics"]["distinct_2"]["values"]) == 5


def test_collapse_lab_replace_warns_and_reports(lab, tmp_path):
    series = lab / "runs" / "replace" / "seed0"
    js, html = tmp_path / "m.json", tmp_path / "m.html"
    r = _cli("--runs", str(series), "--no-embeddings", "--ppl-model", "none",
             "--cache", str(tmp_path / "cache"), "--json", str(js), "--out", str(html),
             "--fail-on-warning")
    assert r.returncode == 1, r.stdout + r.stderr  # warnings gate the exit code
    assert "fail: " in r.stderr and "Traceback" not in r.stderr
    data = json.loads(js.read_text())
    assert [g["label"] for g in data["generations"]] == [f"gen{k}" for k in range(5)]
    # the reference is the lab's own real train/test blocks
    assert data["inputs"]["real"].endswith("real_train.parquet")
    assert data["inputs"]["holdout"].endswith("real_test.parquet")
    rules = {w["rule"] for w in data["warnings"]}
    assert "level" in rules
    # replace trains generation k on generation k's parent's output only: the mix is deep
    assert data["depth"]["share"] == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert "deep_share" in rules
    # and a trend, not only a level: some metric worsened generation after generation
    assert rules & {"worsening", "projected"}, data["warnings"]
    scores = [g["score"] for g in data["generations"]]
    assert scores[-1] < scores[0]
    dom = _rendered_dom(html)
    assert "Trends per property" in dom and "Every metric by generation" in dom
    assert dom.count("main-svg") >= 3  # scores, trends, depth drawn by plotly


def test_accumulate_keeps_real_records_and_is_split_by_depth(lab, tmp_path):
    """A mixed dataset (accumulate's last training mix: real + generations 1-4) is split by
    its lineage column into one generation per depth."""
    mix = lab / "runs" / "accumulate" / "seed0" / "gen4" / "train.parquet"
    js = tmp_path / "m.json"
    r = _cli("--real", str(lab / "data" / "real_train.parquet"), "--holdout",
             str(lab / "data" / "real_test.parquet"), str(mix), "--no-embeddings",
             "--ppl-model", "none", "--no-cache", "--json", str(js))
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(js.read_text())
    assert [g["label"] for g in data["generations"]] == [f"depth {k}" for k in range(5)]
    assert data["depth"]["share"] == [0.0, 0.0, 1.0, 1.0, 1.0]
    # depth 0 is the real records themselves: they score far above model-written ones
    assert data["generations"][0]["score"] > data["generations"][1]["score"]
    gens = load_generations([mix], kind="text")
    assert [g.records for g in gens] == [200] * 5
    with pytest.raises(InputError, match="at least 2 generations"):
        load_generations([mix], kind="text", split=False)


def test_cache_makes_a_new_generation_cost_one_audit(paragraphs, tmp_path):
    real, hold = paragraphs[:300], paragraphs[300:400]
    gens = [paragraphs[400 + 100 * i:500 + 100 * i] for i in range(4)]
    cache = tmp_path / "cache"
    first = monitor(real, gens[:3], hold, config=FAST, cache=cache)
    assert first.cache["misses"] == 3 and first.cache["hits"] == 0
    again = monitor(real, gens[:3], hold, config=FAST, cache=cache)
    assert again.cache == {**first.cache, "hits": 3, "misses": 0}
    assert again.to_dict()["metrics"] == first.to_dict()["metrics"]
    more = monitor(real, gens, hold, config=FAST, cache=cache)
    assert more.cache["hits"] == 3 and more.cache["misses"] == 1
    # another audit config is another key; a damaged entry is recomputed, not trusted
    other = monitor(real, gens[:3], hold, config=FAST.replace(seed=1), cache=cache)
    assert other.cache["misses"] == 3
    victim = sorted(cache.glob("audit-*.json"))[0]
    victim.write_text("{not json")
    fixed = monitor(real, gens, hold, config=FAST, cache=cache)
    assert fixed.cache["misses"] == 1
    assert fixed.to_dict()["metrics"] == more.to_dict()["metrics"]


def test_audit_result_reads_back_from_json(paragraphs):
    res = audit(paragraphs[:200], [paragraphs[i % 10] for i in range(80)], paragraphs[200:280],
                config=FAST)
    back = AuditResult.from_dict(json.loads(res.to_json()))
    assert [m.to_dict() for m in back.metrics] == [m.to_dict() for m in res.metrics]
    assert [w.message for w in back.warnings] == [w.message for w in res.warnings]
    assert back.warnings and back.score == res.score
    wider = AuditResult.from_dict(res.to_dict(), margin_scale=100)
    assert len(wider.warnings) < len(res.warnings)


def _metric(value: float, baseline: float = 0.5, name: str = "distinct_2") -> MetricResult:
    return MetricResult(name=name, prop="diversity", value=value, baseline=baseline,
                        direction="higher", range=(0, 1), score=None, description="")


def _audits(values: list[float], name: str = "distinct_2") -> list[AuditResult]:
    from synthloop.audit import warnings_for

    out = []
    for v in values:
        ms = [_metric(v, name=name)]
        out.append(AuditResult(kind="text", metrics=ms, warnings=warnings_for(ms),
                               sampling={}))
    return out


def test_trend_rules_read_trends_not_noise():
    rules = TrendRules()
    labels = [f"gen{i}" for i in range(6)]
    # distinct_2's margin at baseline 0.5: max(0.2 × 0.5, 0.02) = 0.1, so the line is 0.4
    assert shortfall(_metric(0.45)) == pytest.approx(0.5)
    assert shortfall(_metric(0.55)) == pytest.approx(-0.5)
    # a steady fall towards the line: projected before the level warning fires
    warn = trend_warnings(_audits([0.52, 0.515, 0.506, 0.47, 0.44, 0.404]), labels, None,
                          rules)
    assert [w.rule for w in warn] == ["worsening", "projected"], warn
    assert "within 1 generation " in warn[1].message and "R² 1.00" in warn[1].message
    # the same values, shuffled into noise: nothing
    assert trend_warnings(_audits([0.44, 0.52, 0.404, 0.515, 0.47, 0.506]), labels, None,
                          rules) == []
    # worsening by less than one margin in all is not a trend
    assert trend_warnings(_audits([0.5, 0.498, 0.496, 0.494, 0.492, 0.49]), labels, None,
                          rules) == []
    # past the line: the level warning, with since when; no projection on top of it
    warn = trend_warnings(_audits([0.5, 0.5, 0.38, 0.34, 0.3, 0.26]), labels, None, rules)
    assert [w.rule for w in warn] == ["level", "worsening"]
    assert "(since gen2)" in warn[0].message
    # depth
    warn = trend_warnings(_audits([0.5] * 6), labels, [0, 0.1, 0.2, 0.3, 0.4, 0.45], rules)
    assert [w.rule for w in warn] == ["deep_share"] and "rose for 3" in warn[0].message
    warn = trend_warnings(_audits([0.5] * 6), labels, [0, 1, 1, 1, 1, 1], rules)
    assert [w.rule for w in warn] == ["deep_share"] and "above the 50% limit" in warn[0].message
    with pytest.raises(ConfigError, match="consecutive"):
        TrendRules(consecutive=1)


def test_table_monitor_quiet_on_fresh_rows_warns_on_narrowing():
    import vega_datasets as vega

    df = vega.local_data.seattle_weather().drop(columns=["date"]).sample(frac=1,
                                                                          random_state=0)
    real, hold = df.iloc[:600], df.iloc[600:800]
    fresh = [df.iloc[800 + 200 * i:1000 + 200 * i] for i in range(3)]
    cfg = TableAuditConfig(target="weather")
    quiet = monitor(real, fresh, hold, config=cfg)
    assert quiet.kind == "table" and quiet.warnings == [], [w.message for w in quiet.warnings]
    # each generation resamples the last one's rows, minus its extremes: the tails go first
    rng = np.random.default_rng(0)
    gens, cur = [], df.iloc[800:1000]
    for _ in range(5):
        gens.append(cur)
        keep = cur["precipitation"] <= cur["precipitation"].quantile(0.8)
        keep &= cur["wind"].between(cur["wind"].quantile(0.1), cur["wind"].quantile(0.9))
        cur = cur[keep].sample(200, replace=True, random_state=int(rng.integers(1 << 31)))
    res = monitor(real, gens, hold, config=cfg)
    rules = {w.rule for w in res.warnings}
    assert "level" in rules and rules & {"worsening", "projected"}, \
        [w.message for w in res.warnings]


def test_bad_input_is_one_line(tmp_path, paragraphs, lab):
    one = _jsonl(tmp_path / "one.jsonl", paragraphs[:50])
    real = _jsonl(tmp_path / "real.jsonl", paragraphs[100:300])
    _one_error_line(_cli("--real", str(real), str(one), "--no-cache"), "at least 2 generations")
    _one_error_line(_cli(str(one), "--no-cache"), "--real is required")
    _one_error_line(_cli("--real", str(real), "--no-cache"), "give the generations")
    _one_error_line(_cli("--real", str(real), str(one), str(one), "--consecutive", "1",
                         "--no-cache"), "--consecutive")
    _one_error_line(_cli("--real", str(real), str(one), "--split-by-depth", "--no-cache"),
                    "no lineage column 'origin'", "one.jsonl")
    _one_error_line(_cli("--real", str(real), "--runs", str(tmp_path), "--no-cache"),
                    "not a run folder")
    # lineage in one generation, not in the next
    deep = lab / "runs" / "replace" / "seed0" / "gen1" / "synthetic.parquet"
    _one_error_line(_cli("--real", str(real), str(deep), str(one), "--no-cache"),
                    "gen1", "no lineage columns")
    # schema drift between table generations
    a = pd.DataFrame({"x": np.arange(40.0), "y": ["a", "b"] * 20})
    ra, g0, g1, g2 = (tmp_path / f"{n}.csv" for n in ("ra", "g0", "g1", "g2"))
    a.to_csv(ra, index=False)
    a.to_csv(g0, index=False)
    a.rename(columns={"y": "z"}).to_csv(g1, index=False)
    a.assign(x=["v"] * 40).to_csv(g2, index=False)
    _one_error_line(_cli("--real", str(ra), str(g0), str(g1), "--no-cache"),
                    "gen1", "missing 'y'", "extra 'z'")
    _one_error_line(_cli("--real", str(ra), str(g0), str(g2), "--no-cache"),
                    "column 'x' is text but numeric in gen0")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _one_error_line(_cli("--real", str(real), str(one), str(empty), "--no-cache"), "empty")
    with pytest.raises(ConfigError, match=r"gen1 \(<list>\).*synthetic 1"):
        monitor(paragraphs[:100], [paragraphs[:20], ["only one"]], config=FAST)
    assert pq.read_table(deep).num_rows == 200
    assert isinstance(load_generations([one, one], kind="text")[0], Generation)


def test_audit_predicts_collapse_statistic():
    from synthloop.collapse.metrics import audit_predicts_collapse

    def row(seed, gen, ppl, score, privacy):
        audit_ = {"score": score, "properties": {"fidelity": score, "privacy": privacy}}
        return {"seed": seed, "generation": gen, "test_ppl": ppl,
                **({"audit": audit_} if gen else {})}

    runs = [row(s, 0, 100.0, None, None) for s in (0, 1)]
    runs += [row(s, g, 100.0 + 10 * g + s, 1 - 0.1 * g, 0.1 * g) for s in (0, 1)
             for g in range(1, 5)]
    out = audit_predicts_collapse(runs, n_boot=200)
    assert out["rows"] == 8
    # the worse the mix scores, the worse the model: ρ = +1 for fidelity, −1 for privacy
    assert out["properties"]["fidelity"]["rho"] == pytest.approx(1.0, abs=0.03)
    assert out["properties"]["privacy"]["rho"] == pytest.approx(-1.0, abs=0.03)
    assert out["training_value"]["properties"] == ["fidelity"]
    lo, hi = out["overall"]["low"], out["overall"]["high"]
    assert lo <= out["overall"]["rho"] + 1e-9 and hi <= 1.0
    assert audit_predicts_collapse(runs[:4]) == {"rows": 2}


def test_lab_audit_is_added_on_rerun(lab):
    """Switching ``audit`` on for a finished lab run audits each generation's training mix
    without retraining anything; results.json gets the prediction."""
    from synthloop.collapse import CollapseConfig, run_collapse

    cfg = CollapseConfig.from_dict(json.loads((lab / "config.json").read_text())["config"])
    weights = json.loads((lab / "runs" / "replace" / "seed0" / "gen3" / "metrics.json")
                         .read_text())["weights_sha256"]
    res = run_collapse(cfg.replace(audit=True), report=False)
    rows = [r for r in res.runs if r["generation"] > 0]
    assert len(rows) == 8 and all("audit" in r for r in rows)
    again = json.loads((lab / "runs" / "replace" / "seed0" / "gen3" / "metrics.json")
                       .read_text())
    assert again["weights_sha256"] == weights  # nothing retrained
    rep = next(r for r in rows if r["policy"] == "replace" and r["generation"] == 4)
    acc = next(r for r in rows if r["policy"] == "accumulate" and r["generation"] == 4)
    # accumulate's mix holds the real blocks: it scores far better on fidelity and tails
    assert acc["audit"]["properties"]["tails"] > rep["audit"]["properties"]["tails"]
    pred = json.loads((lab / "results.json").read_text())["audit_prediction"]
    assert pred["rows"] == 8 and -1 <= pred["overall"]["rho"] <= 1


def test_pipeline_run_folders_are_generations(tiny_model, tmp_path):
    """``--runs`` takes pipeline run folders in order; their published data (real seeds plus
    synthetic records, with lineage) is each a generation."""
    from test_pipeline import SEEDS, _config

    from synthloop.catalog import parse_config
    from synthloop.pipeline import run_pipeline

    runs = []
    for i in range(2):
        cfg, steps = parse_config(_config(tiny_model, seed=i))
        run_pipeline(cfg, steps, tmp_path / f"run{i}")
        runs.append(tmp_path / f"run{i}")
    js = tmp_path / "m.json"
    r = _cli("--real", str(SEEDS), "--runs", str(runs[0]), "--runs", str(runs[1]),
             "--no-embeddings", "--ppl-model", "none", "--no-cache", "--json", str(js))
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(js.read_text())
    assert [g["label"] for g in data["generations"]] == ["gen0", "gen1"]
    for g in data["generations"]:
        # accumulate keeps the 60 real seeds beside the synthetic records one hop away
        assert g["depths"]["0"] == 60 and g["depths"]["1"] == g["records"] - 60
    assert data["depth"]["share"] == [0.0, 0.0]


def test_feature_memo_on_disk_round_trips(paragraphs, tmp_path):
    """The real side's features written by one memo are read back by another (a later
    process) and give the same audit, bit for bit."""
    from synthloop.audit import FeatureMemo

    cfg = TextAuditConfig(embeddings=True, ppl_model=None)
    real, hold, syn = paragraphs[:120], paragraphs[120:170], paragraphs[170:220]
    first = FeatureMemo(tmp_path / "features")
    a = audit(real, syn, hold, config=cfg, memo=first)
    assert first.misses == 2 and list((tmp_path / "features").glob("*.npz"))
    second = FeatureMemo(tmp_path / "features")
    b = audit(real, syn, hold, config=cfg, memo=second)
    assert second.hits == 2 and second.misses == 0  # real and holdout embeddings from disk
    assert [m.to_dict() for m in b.metrics] == [m.to_dict() for m in a.metrics]
    for f in (tmp_path / "features").glob("*.npz"):
        f.write_bytes(b"damaged")
    third = FeatureMemo(tmp_path / "features")
    c = audit(real, syn, hold, config=cfg, memo=third)
    assert third.misses == 2 and [m.value for m in c.metrics] == [m.value for m in a.metrics]


def test_token_stats_survive_the_disk():
    from synthloop.audit.text import _stats_arrays, _stats_from_arrays
    from synthloop.detect.scores import TokenStats

    rng = np.random.default_rng(0)
    stats = [TokenStats(*(rng.normal(size=n) for _ in range(3))) for n in (3, 0, 5)]
    back = _stats_from_arrays(_stats_arrays(stats))
    assert [s.n_tokens for s in back] == [3, 0, 5]
    for s, t in zip(stats, back, strict=True):
        assert np.array_equal(s.logp, t.logp) and np.array_equal(s.var, t.var)
