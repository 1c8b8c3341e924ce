from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synthloop.collapse import CollapseConfig, run_collapse
from synthloop.collapse import experiment as exp
from synthloop.errors import ConfigError
from synthloop.models.params import GenParams, TrainParams


def _cfg(corpus: Path, out: Path, **kw) -> CollapseConfig:
    base = dict(corpus=str(corpus), out=str(out), generations=3,
                policies="replace,keep-real:0.2,accumulate,filter:ppl-top:0.2", seeds=1,
                block_tokens=24, prompt_tokens=8, new_tokens=24, max_train_blocks=60,
                max_test_blocks=30, vocab_size=300,
                train=TrainParams(epochs=1, batch_size=8, seq_len=50, lr=3e-3),
                decoding=GenParams(batch_size=64))
    base.update(kw)
    return CollapseConfig(**base)


def test_end_to_end_outputs_and_provenance(small_corpus: Path, tmp_path: Path):
    out = tmp_path / "run"
    res = run_collapse(_cfg(small_corpus, out))
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 4 * 3
    row = results["runs"][0]
    for key in ("policy", "seed", "generation", "test_ppl", "entropy", "distinct_2",
                "tail_retention", "sample_ppl", "train"):
        assert key in row
    assert {f["expectation"] for f in res.findings} >= {
        "replace degrades held-out perplexity beyond the seed spread"}
    html = (out / "report.html").read_text()
    assert "Plotly.newPlot" in html and "Collapse lab" in html
    assert '<script src="http' not in html  # plotly.js is inlined: the page opens offline

    n = 60
    runs = out / "runs"
    # replace: generation k trains on n records written by generation k-1's model
    t = pq.read_table(runs / "replace" / "seed0" / "gen2" / "train.parquet")
    assert t.num_rows == n and set(t.column("generation").to_pylist()) == {2}
    assert set(t.column("origin").to_pylist()) == {"synthetic"}
    # keep-real:0.2 -> 12 real + 48 synthetic of the newest generation
    t = pq.read_table(runs / "keep-real_0.2" / "seed0" / "gen2" / "train.parquet")
    gens = t.column("generation").to_pylist()
    assert gens.count(0) == 12 and gens.count(2) == 48
    # accumulate: real + every synthetic set so far
    t = pq.read_table(runs / "accumulate" / "seed0" / "gen2" / "train.parquet")
    gens = t.column("generation").to_pylist()
    assert t.num_rows == 3 * n and all(gens.count(g) == n for g in (0, 1, 2))
    # filter: n kept from 75 candidates; the 15 dropped kept with their reason
    rej = pq.read_table(runs / "filter_ppl-top_0.2" / "seed0" / "gen1" / "rejected.parquet")
    assert rej.num_rows == 15
    assert all("gen0_ppl" in r for r in rej.column("drop_reason").to_pylist())
    # synthetic records point at the real prompt they continue
    syn = pq.read_table(runs / "replace" / "seed0" / "gen1" / "synthetic.parquet")
    real_ids = set(pq.read_table(out / "data" / "real_train.parquet").column("id").to_pylist())
    assert all(p[0] in real_ids for p in syn.column("parents").to_pylist())
    gen = json.loads(syn.column("generator")[0].as_py())
    assert gen["model"] == "tiny#gen1" and len(gen["weights_sha256"]) == 64


def test_resume_continues_without_redoing_work(small_corpus: Path, tmp_path: Path,
                                               monkeypatch):
    out = tmp_path / "run"
    cfg = _cfg(small_corpus, out, policies="replace,accumulate")
    calls = []
    real_step = exp._step

    def crashing_step(ctx, policy, seed, k, scorer):
        calls.append((policy.spec, k))
        if policy.spec == "accumulate" and k == 2:
            raise KeyboardInterrupt  # killed mid-run
        return real_step(ctx, policy, seed, k, scorer)

    monkeypatch.setattr(exp, "_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        run_collapse(cfg)
    done = out / "runs" / "replace" / "seed0" / "gen2" / "metrics.json"
    assert done.exists()
    stamp = done.stat().st_mtime_ns
    before = (out / "runs" / "replace" / "seed0" / "gen1" / "synthetic.parquet").read_bytes()

    monkeypatch.setattr(exp, "_step", real_step)
    res = run_collapse(cfg)
    assert done.stat().st_mtime_ns == stamp  # finished generations are not recomputed
    after = (out / "runs" / "replace" / "seed0" / "gen1" / "synthetic.parquet").read_bytes()
    assert before == after
    keys = [(r["policy"], r["generation"]) for r in res.runs]
    assert len(keys) == len(set(keys)) == 6

    # more generations later: only the new ones run
    res = run_collapse(_cfg(small_corpus, out, policies="replace,accumulate", generations=4))
    assert done.stat().st_mtime_ns == stamp
    assert max(r["generation"] for r in res.runs) == 3


def test_resume_refuses_a_different_config(small_corpus: Path, tmp_path: Path):
    out = tmp_path / "run"
    run_collapse(_cfg(small_corpus, out, policies="replace", generations=1), report=False)
    with pytest.raises(ConfigError, match="block_tokens"):
        run_collapse(_cfg(small_corpus, out, policies="replace", generations=1,
                          block_tokens=16), report=False)


def test_same_seed_same_bytes(small_corpus: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    paths = []
    for name in ("a", "b"):
        run_collapse(_cfg(small_corpus, tmp_path / name, policies="replace", generations=2),
                     report=False)
        paths.append(tmp_path / name / "runs" / "replace" / "seed0" / "gen1")
    for f in ("synthetic.parquet", "train.parquet"):
        assert (paths[0] / f).read_bytes() == (paths[1] / f).read_bytes()


def test_bad_config_is_a_clear_error(small_corpus: Path, tmp_path: Path):
    with pytest.raises(ConfigError):
        run_collapse(_cfg(small_corpus, tmp_path / "x", policies="bogus"))
    with pytest.raises(ConfigError):
        run_collapse(_cfg(small_corpus, tmp_path / "y", prompt_tokens=100))


def test_corpus_from_a_jsonl_dataset(tmp_path: Path, austen_text: str):
    import json as _json

    path = tmp_path / "docs.jsonl"
    paras = [p for p in austen_text.split("\n\n") if len(p) > 200][:200]
    path.write_text("".join(_json.dumps({"text": p}) + "\n" for p in paras))
    res = run_collapse(_cfg(path, tmp_path / "run", policies="replace", generations=2,
                            block_tokens=16, prompt_tokens=8, new_tokens=16), report=False)
    assert {r["generation"] for r in res.runs} == {0, 1}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "no text field"}\n')
    from synthloop.errors import InputError

    with pytest.raises(InputError, match="missing column 'text'"):
        run_collapse(_cfg(bad, tmp_path / "run2"), report=False)
