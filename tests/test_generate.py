"""Generators: HTTP backend against our OpenAI-compatible server, copula, taxonomy,
self-instruct, the generate CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synthloop.cli import app
from synthloop.errors import ConfigError, InputError
from synthloop.generate.backends import PIPELINE_SAMPLING, LocalBackend, OpenAIBackend, RateLimiter
from synthloop.generate.copula import GaussianCopula, PrivacyFilter
from synthloop.generate.server import OpenAIServer
from synthloop.generate.text import SelfInstruct, TaxonomyGenerate, rouge_l
from synthloop.models.registry import load_lm
from synthloop.pipeline.step import StepContext
from synthloop.records.schema import with_provenance
from synthloop.records.taxonomy import read_taxonomy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()
SAMPLING = PIPELINE_SAMPLING.replace(max_new_tokens=10, temperature=0.9, top_p=1.0)


@pytest.fixture(scope="module")
def backend(tiny_model) -> LocalBackend:
    return LocalBackend(load_lm(str(tiny_model)))


@pytest.fixture()
def server(backend):
    srv = OpenAIServer(backend, port=0).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_http_backend_matches_the_local_model(server, backend):
    prompts = ["Once upon a time", "It was a dark night", "Dear Sir"]
    client = OpenAIBackend(server.url, "tiny", concurrency=3)
    got = client.complete(prompts, SAMPLING, seed=7)
    # the client sends seed + i per prompt; the server answers each alone
    want = [backend.complete([p], SAMPLING, seed=7 + i)[0] for i, p in enumerate(prompts)]
    assert [c.text for c in got] == [c.text for c in want]
    assert all(c.error is None for c in got)
    assert client.identity() == backend.identity()


def test_http_backend_retries_429_and_5xx_then_succeeds(server):
    server._faults = [503, 429, 500]
    client = OpenAIBackend(server.url, "tiny", concurrency=1, max_retries=3, backoff_s=0.01)
    [c] = client.complete(["Hello"], SAMPLING, seed=1)
    assert c.error is None and c.text


def test_http_backend_gives_up_with_a_reason(server):
    server._faults = [503] * 10
    client = OpenAIBackend(server.url, "tiny", concurrency=1, max_retries=2, backoff_s=0.01)
    [c] = client.complete(["Hello"], SAMPLING, seed=1)
    assert c.error.endswith("HTTP 503 after 2 retries")
    down = OpenAIBackend("http://127.0.0.1:9/v1", "tiny", max_retries=1, backoff_s=0.01,
                         timeout_s=2)
    [c] = down.complete(["Hello"], SAMPLING, seed=1)
    assert "connection error" in c.error


def test_http_backend_does_not_retry_client_errors(server):
    client = OpenAIBackend(server.url, "tiny", max_retries=3, backoff_s=0.01)
    [c] = client.complete(["x " * 600], PIPELINE_SAMPLING.replace(max_new_tokens=10), seed=1)
    assert "HTTP 400" in c.error and "tokens" in c.error


def test_rate_limiter_spaces_requests():
    limiter = RateLimiter(50.0)
    stamps = []
    for _ in range(6):
        limiter.acquire()
        stamps.append(time.monotonic())
    assert min(np.diff(stamps)) >= 0.018


def test_pipeline_generates_through_a_server_and_drops_failures(server, tmp_path):
    from synthloop.catalog import parse_config
    from synthloop.pipeline import run_pipeline

    server._faults = [500] * 4  # the first record's request fails for good (1 + 3 tries)
    cfg, steps = parse_config({
        "name": "http", "input": str(EXAMPLES / "data" / "austen_seeds.jsonl"),
        "shard_size": 60, "steps": [{"type": "generate", "sampling": SAMPLING.model_dump(),
                                     "backend": {"model": "tiny", "base_url": server.url,
                                                 "concurrency": 1, "max_retries": 3}}]})
    res = run_pipeline(cfg, steps, tmp_path / "run")
    assert res.summary["synthetic"] == 59
    exc = pq.read_table(tmp_path / "run" / "excluded").to_pylist()
    assert len(exc) == 1 and "HTTP 500 after 3 retries" in exc[0]["drop_reason"]
    gen = json.loads(pq.read_table(tmp_path / "run" / "data").column("generator")[0].as_py())
    assert gen["model"] == "tiny" and len(gen["weights_sha256"]) == 64
    assert len(gen["template_sha256"]) == 64 and gen["decoding"]["max_new_tokens"] == 10


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    from synthloop.records.io import read_csv

    return read_csv(EXAMPLES / "data" / "penguins.csv").to_pandas()


def test_copula_keeps_marginals_missingness_and_correlation(penguins):
    model = GaussianCopula().fit(penguins, seed=0)
    s = model.sample(3000, seed=1)
    assert list(s.columns) == list(penguins.columns)
    for c in ("bill_length_mm", "flipper_length_mm", "body_mass_g"):
        assert s[c].min() >= penguins[c].min() and s[c].max() <= penguins[c].max()
        assert abs(s[c].mean() - penguins[c].mean()) < 0.1 * penguins[c].std() + \
            (penguins[c].mean() * 0.02 if c == "body_mass_g" else 0)
    assert set(s["species"]) <= set(penguins["species"])
    share = s["species"].value_counts(normalize=True)
    real_share = penguins["species"].value_counts(normalize=True)
    assert (share - real_share).abs().max() < 0.05
    assert abs(s["sex"].isna().mean() - penguins["sex"].isna().mean()) < 0.02
    r = penguins[["flipper_length_mm", "body_mass_g"]].corr().iloc[0, 1]
    q = s[["flipper_length_mm", "body_mass_g"]].corr().iloc[0, 1]
    assert abs(r - q) < 0.1
    assert pd.api.types.is_integer_dtype(s["year"])
    again = GaussianCopula().fit(penguins, seed=0)
    assert again.sample(3000, seed=1).equals(s)
    assert again.fingerprint() == model.fingerprint()
    bounded = GaussianCopula(constraints=["body_mass_g > 4000", "bill_length_mm <= "
                                          "flipper_length_mm"]).fit(penguins, seed=0)
    b = bounded.sample(500, seed=2)
    assert len(b) == 500
    assert (b["body_mass_g"].dropna() > 4000).all()  # a missing value is not a violation


def test_copula_constraint_errors(penguins):
    with pytest.raises(ConfigError, match="no column 'weight'"):
        GaussianCopula(constraints=["weight > 0"]).fit(penguins)
    with pytest.raises(InputError, match="hold for too few"):
        GaussianCopula(constraints=["year > 3000"]).fit(penguins).sample(10)


def test_privacy_filter_drops_copied_rows(penguins, tmp_path):
    from synthloop.records.io import write_parquet
    from synthloop.records.schema import Generator, synthetic_records

    real_path = write_parquet(with_provenance(
        __import__("pyarrow").Table.from_pandas(penguins, preserve_index=False)),
        tmp_path / "real.parquet")
    fresh = GaussianCopula().fit(penguins, seed=0).sample(200, seed=3)
    copies = penguins.sample(20, random_state=0)
    both = pd.concat([fresh, copies], ignore_index=True)
    import pyarrow as pa

    table = synthetic_records(pa.Table.from_pandas(both, preserve_index=False),
                              generator=Generator("c", "0" * 64), parents=[[]] * len(both),
                              generations=[1] * len(both), run_id=None, created_at="x")
    out = PrivacyFilter().apply(table, StepContext(seed=0, source=real_path))
    dropped = out.dropped.to_pandas()
    assert sum(r == "identical to a real row" for r in out.reasons) == 20
    assert len(dropped) <= 20 + 0.15 * 200  # the bar is a 5% quantile of real-to-real
    assert len(out.kept) >= 170


def test_taxonomy_reading_and_errors(tmp_path):
    t = read_taxonomy(EXAMPLES / "taxonomy")
    paths = t.column("taxonomy_path").to_pylist()
    assert paths == ["compositional_skills/arithmetic/addition",
                     "compositional_skills/writing/thank_you_notes",
                     "knowledge/science/photosynthesis"]
    assert len(json.loads(t.column("contexts")[2].as_py())) == 1
    assert len(json.loads(t.column("seed_examples")[2].as_py())) == 3
    bad = tmp_path / "tax" / "a"
    bad.mkdir(parents=True)
    (bad / "qna.yaml").write_text("task_description: x\nseed_examples:\n  - question: q\n")
    with pytest.raises(InputError, match=r"seed_examples\[0\]: missing field 'answer'"):
        read_taxonomy(tmp_path / "tax")
    (bad / "qna.yaml").write_text("task_description: [x\n")
    with pytest.raises(InputError, match="qna.yaml: line 2, column 1"):
        read_taxonomy(tmp_path / "tax")


def test_taxonomy_generate_keeps_the_leaf_path(backend, tiny_model):
    leaves = read_taxonomy(EXAMPLES / "taxonomy")
    step = TaxonomyGenerate(backend={"model": str(tiny_model)}, n_per_leaf=3, shots=2,
                            sampling=SAMPLING, min_chars=0)
    out = step.apply(leaves, StepContext(seed=0))
    t = out.kept
    assert t.num_rows + (0 if out.dropped is None else out.dropped.num_rows) == 9
    assert sorted(set(t.column("taxonomy_path").to_pylist())) <= \
        sorted(leaves.column("taxonomy_path").to_pylist())
    leaf_ids = set(leaves.column("id").to_pylist())
    assert all(p[0] in leaf_ids for p in t.column("parents").to_pylist())
    # the knowledge leaf's answers are grounded in its document
    know = [r for r in t.to_pylist() if r["taxonomy_path"].startswith("knowledge")]
    assert know and all("chloroplasts" in r["context"] for r in know)


def test_rouge_l():
    assert rouge_l(["a", "b", "c", "d"], ["a", "b", "c", "d"]) == 1.0
    assert rouge_l(["a", "b", "c", "d"], ["a", "x", "c", "y"]) == pytest.approx(0.5)
    assert rouge_l([], ["a"]) == 0.0


def test_self_instruct_grows_the_pool_and_rejects_near_copies(tiny_model):
    import pyarrow as pa

    seeds = with_provenance(pa.table({"instruction": [
        "Write a poem about the sea.", "List three uses of copper.",
        "Explain why the sky is blue.", "Translate 'good morning' into French."]}))
    step = SelfInstruct(backend={"model": str(tiny_model)}, n=6, batch=4, max_rounds=4,
                        sampling=SAMPLING, min_chars=0, max_rouge_l=0.9)
    out = step.apply(seeds, StepContext(seed=0))
    kept = out.kept.to_pylist()
    assert 1 <= len(kept) <= 6
    known = set(seeds.column("id").to_pylist()) | {r["id"] for r in kept}
    assert all(set(r["parents"]) <= known | {r2["id"] for r2 in out.dropped.to_pylist()}
               if out.dropped is not None else set(r["parents"]) <= known for r in kept)
    assert all(r["generation"] >= 1 for r in kept)


def test_generate_cli_with_prompts_and_table(tiny_model, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Tell me about {w}."}) + "\n"
                               for w in ("cats", "tea", "rain")))
    out = tmp_path / "gen.jsonl"
    r = runner.invoke(app, ["generate", "--model", str(tiny_model), "--prompts", str(prompts),
                            "--n", "7", "--out", str(out), "--max-new-tokens", "8"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 7 and all(x["origin"] == "synthetic" for x in rows)
    assert [x["prompt"] for x in rows[:4]] == ["Tell me about cats.", "Tell me about tea.",
                                               "Tell me about rain.", "Tell me about cats."]
    assert "dtype" not in json.loads(rows[0]["generator"])["decoding"]
    # bfloat16 decoding: a different dtype may change tokens, so provenance records it
    out16 = tmp_path / "gen16.jsonl"
    r = runner.invoke(app, ["generate", "--model", str(tiny_model), "--prompts", str(prompts),
                            "--n", "3", "--out", str(out16), "--max-new-tokens", "8",
                            "--dtype", "bfloat16"])
    assert r.exit_code == 0, r.output
    rows16 = [json.loads(x) for x in out16.read_text().splitlines()]
    assert len(rows16) == 3
    assert json.loads(rows16[0]["generator"])["decoding"]["dtype"] == "bfloat16"
    tab = tmp_path / "t.parquet"
    r = runner.invoke(app, ["generate", "--model", "gaussian-copula", "--table",
                            str(EXAMPLES / "data" / "penguins.csv"), "--n", "50",
                            "--out", str(tab)])
    assert r.exit_code == 0, r.output
    assert pq.read_table(tab).num_rows == 50


@pytest.mark.parametrize("args,message", [
    (["--prompts", "nowhere.jsonl"], "nowhere.jsonl: no such file"),
    ([], "give exactly one of --prompts, --taxonomy and --table"),
    (["--table", "x.csv", "--taxonomy", "t"], "give exactly one"),
    (["--temperature", "0", "--prompts", "p.jsonl"], "greater than 0"),
    (["--dtype", "float16", "--prompts", "p.jsonl"], "--dtype must be auto, float32 or"),
])
def test_generate_cli_bad_input(tmp_path, args, message):
    r = runner.invoke(app, ["generate", "--model", "smollm2-135m", "--n", "3", "--out",
                            str(tmp_path / "o.jsonl"), *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_sdv_adapter_on_the_pinned_sdv(penguins):
    """``sdv:gaussian_copula`` on the sdv version requirements.lock pins (2.0.0 removed
    ``Metadata.detect_from_dataframe``): fits, samples the real columns, is seeded."""
    import sdv

    from synthloop.generate.copula import SDVSynthesizer

    assert sdv.__version__ == "2.0.0"
    model = SDVSynthesizer("gaussian_copula").fit(penguins, seed=0)
    a, b = model.sample(200, seed=1), model.sample(200, seed=1)
    assert list(a.columns) == list(penguins.columns) and len(a) == 200
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(model.sample(200, seed=2))
    assert set(a["species"].dropna()) <= set(penguins["species"])


def test_sdv_engine_in_the_cli(tmp_path):
    out = tmp_path / "sdv.parquet"
    r = runner.invoke(app, ["generate", "--table", str(EXAMPLES / "data" / "penguins.csv"),
                            "--model", "sdv:gaussian_copula", "--n", "50", "--out", str(out)])
    assert r.exit_code == 0, r.output
    t = pq.read_table(out)
    assert t.num_rows == 50 and set(t.column("origin").to_pylist()) == {"synthetic"}
