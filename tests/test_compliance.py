"""Compliance: watermark statistics, marking, Croissant manifest, signing and verification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import binom
from typer.testing import CliRunner

from synthloop.cli import app
from synthloop.compliance.manifest import (
    build_manifest,
    generate_signing_key,
    load_signing_key,
    merkle_root,
    sign_manifest,
    validate_manifest,
    verify_dataset,
)
from synthloop.compliance.watermark import GreenList, key_id, load_key
from synthloop.errors import ConfigError
from synthloop.pipeline.folder import dataset_lineage

runner = CliRunner()
KEY = b"test-watermark-key-0123456789"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_green_list_share_and_keying():
    g = GreenList(KEY, 5000)
    rng = np.random.default_rng(0)
    shares = [g.green_mask(rng.integers(0, 5000, 4)).mean() for _ in range(50)]
    assert abs(np.mean(shares) - 0.25) < 0.01
    other = GreenList(b"another-key-0123456789", 5000)
    ctx = [1, 2, 3, 4]
    agree = (g.green_mask(ctx) == other.green_mask(ctx)).mean()
    assert agree < 0.7  # independent keys: 0.25² + 0.75² = 0.625 expected
    assert key_id(KEY) != key_id(b"another-key-0123456789") and "test" not in key_id(KEY)


def test_unmarked_tokens_score_like_chance_and_p_value_is_exact_binomial():
    g = GreenList(KEY, 5000)
    rng = np.random.default_rng(1)
    zs = [g.score_ids(rng.integers(0, 5000, 200))["z"] for _ in range(300)]
    assert abs(np.mean(zs)) < 0.25 and 0.8 < np.std(zs) < 1.2
    assert max(zs) < 4
    s = g.score_ids(rng.integers(0, 5000, 100))
    assert s["p_value"] == pytest.approx(binom.sf(s["green"] - 1, s["tokens_scored"], 0.25))


def test_greedy_green_choice_is_detected_and_repeats_count_once():
    g = GreenList(KEY, 5000)
    rng = np.random.default_rng(2)
    ids = list(rng.integers(0, 5000, 4))
    for _ in range(150):  # always pick a green token: the strongest watermark
        ids.append(int(rng.choice(np.flatnonzero(g.green_mask(ids)))))
    s = g.score_ids(ids)
    assert s["tokens_scored"] == 150 and s["green"] == 150 and s["z"] > 10
    loop = [7, 8, 9, 10, 11] * 40  # one 5-gram pattern repeated: scored a handful of times
    assert g.score_ids(loop)["tokens_scored"] <= 5


def test_key_loading(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTHLOOP_WATERMARK_KEY", raising=False)
    with pytest.raises(ConfigError, match="no watermark key: give key_file or set"):
        load_key()
    monkeypatch.setenv("SYNTHLOOP_WATERMARK_KEY", "short")
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        load_key()
    f = tmp_path / "k"
    f.write_bytes(KEY + b"\n")
    assert load_key(f) == KEY


def test_merkle_root_changes_with_any_leaf():
    leaves = [f"{i:064x}" for i in range(7)]
    root = merkle_root(leaves)
    for j in range(7):
        changed = list(leaves)
        changed[j] = f"{99:064x}"
        assert merkle_root(changed) != root
    assert merkle_root(leaves[:6]) != root


@pytest.fixture()
def run_data(tiny_model, tmp_path) -> Path:
    from synthloop.catalog import parse_config
    from synthloop.pipeline import run_pipeline

    cfg, steps = parse_config({
        "name": "signed", "seed": 0, "input": str(EXAMPLES / "data" / "austen_seeds.jsonl"),
        "shard_size": 20, "steps": [
            {"type": "generate", "backend": {"model": str(tiny_model)},
             "sampling": {"max_new_tokens": 10}},
            {"type": "mix", "policy": "accumulate"}]})
    return run_pipeline(cfg, steps, tmp_path / "run").data


def test_manifest_validates_signs_and_verifies(run_data, tmp_path):
    path = build_manifest(run_data)
    errors, _ = validate_manifest(path)
    assert errors == []
    doc = json.loads(path.read_text())
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.1"
    assert doc["disclosure"]["synthetic_share"] == pytest.approx(0.5)
    assert doc["disclosure"]["depth_histogram"] == {"0": 60, "1": 60}
    assert doc["disclosure"]["digital_source_type"] == [
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"]
    assert doc["prov:wasDerivedFrom"][0]["@id"].endswith("austen_seeds.jsonl")
    assert doc["prov:wasGeneratedBy"][0]["prov:used"][0]["name"] == "tiny"
    files = {d["name"] for d in doc["distribution"] if d["@type"] == "cr:FileObject"}
    assert files == {p.name for p in run_data.glob("*.parquet")}
    pub = generate_signing_key(tmp_path / "key.pem")
    sign_manifest(path, load_signing_key(tmp_path / "key.pem"))
    rep = verify_dataset(run_data, public_key=pub)
    assert rep.ok, rep.problems
    assert rep.records == 120
    other = generate_signing_key(tmp_path / "other.pem")
    assert not verify_dataset(run_data, public_key=other).ok


def _rewrite(shard: Path, fn) -> None:
    t = pq.read_table(shard)
    pq.write_table(fn(t), shard)


@pytest.fixture()
def signed(run_data, tmp_path) -> Path:
    """The run's data with a signed manifest; returns the manifest path."""
    path = build_manifest(run_data)
    generate_signing_key(tmp_path / "key.pem")
    sign_manifest(path, load_signing_key(tmp_path / "key.pem"))
    return path


def test_one_changed_byte_in_one_record_is_named(run_data, signed):
    shard = sorted(run_data.glob("*.parquet"))[1]
    t = pq.read_table(shard)
    victim = t.column("id")[3].as_py()
    texts = t.column("text").to_pylist()
    texts[3] = texts[3][:-1] + ("x" if texts[3][-1] != "x" else "y")  # one byte
    _rewrite(shard, lambda t: t.set_column(t.column_names.index("text"), "text",
                                           pa.array(texts)))
    rep = verify_dataset(run_data, allow_unknown_signer=True)
    assert not rep.ok
    assert f"record {victim}: content changed" in rep.problems
    assert f"file {shard.name}: sha256 differs from the manifest" in rep.problems
    assert not any("signature" in p for p in rep.problems)
    r = runner.invoke(app, ["provenance", "verify", str(run_data), "--allow-unknown-signer"])
    assert r.exit_code == 1 and victim in r.output


def test_added_and_removed_records_are_named(run_data, signed):
    path = signed
    shard = sorted(run_data.glob("*.parquet"))[0]
    t = pq.read_table(shard)
    gone = t.column("id")[0].as_py()
    extra = t.slice(1, 1)
    _rewrite(shard, lambda t: pa.concat_tables([t.slice(1), extra]))
    problems = verify_dataset(run_data).problems
    assert f"record {gone}: removed" in problems
    dup = extra.column("id")[0].as_py()
    assert f"record {dup}: added" in problems
    # an edited manifest breaks the signature
    doc = json.loads(path.read_text())
    doc["disclosure"]["synthetic_share"] = 0.0
    path.write_text(json.dumps(doc))
    assert any("signature does not match" in p for p in verify_dataset(run_data).problems)


def test_show_and_manifest_cli(run_data, tmp_path, monkeypatch):
    key = tmp_path / "k.pem"
    r = runner.invoke(app, ["provenance", "keygen", "--out", str(key)])
    assert r.exit_code == 0 and "public key" in r.output
    r = runner.invoke(app, ["provenance", "manifest", str(run_data), "--key-file", str(key)])
    assert r.exit_code == 0, r.output
    assert "0 errors" in r.output
    r = runner.invoke(app, ["provenance", "verify", str(run_data)])
    assert r.exit_code == 1 and "signer not checked" in r.output
    r = runner.invoke(app, ["provenance", "verify", str(run_data), "--allow-unknown-signer"])
    assert r.exit_code == 0 and "verified" in r.output and "integrity only" in r.output
    r = runner.invoke(app, ["provenance", "show", str(run_data), "--json"])
    s = json.loads(r.output)
    assert s["synthetic_share"] == pytest.approx(0.5) and s["generators"] == {"tiny": 60}
    assert s == dataset_lineage(run_data)
    assert s["real"] == s["synthetic"] == 60 and s["depth_histogram"] == {"0": 60, "1": 60}
    monkeypatch.delenv("SYNTHLOOP_SIGNING_KEY", raising=False)
    r = runner.invoke(app, ["provenance", "manifest", str(run_data), "--sign"])
    assert r.exit_code == 2 and "no signing key" in r.output
    r = runner.invoke(app, ["provenance", "manifest", str(run_data)])  # unsigned by default
    assert r.exit_code == 0 and "not signed" in r.output
    r = runner.invoke(app, ["provenance", "verify", str(run_data)])
    assert r.exit_code == 1 and "not signed" in r.output
    r = runner.invoke(app, ["provenance", "verify", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_a_forger_who_re_signs_is_not_verified(run_data, signed, tmp_path):
    pub = json.loads((run_data / "_croissant.json.sig").read_text())["public_key"]
    shard = sorted(run_data.glob("*.parquet"))[0]
    texts = pq.read_table(shard).column("text").to_pylist()
    texts[0] = "forged " + texts[0]
    _rewrite(shard, lambda t: t.set_column(t.column_names.index("text"), "text",
                                           pa.array(texts)))
    forger = tmp_path / "forger.pem"
    assert runner.invoke(app, ["provenance", "keygen", "--out", str(forger)]).exit_code == 0
    r = runner.invoke(app, ["provenance", "manifest", str(run_data), "--key-file", str(forger)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["provenance", "verify", str(run_data)])
    assert r.exit_code == 1 and "signer not checked" in r.output
    r = runner.invoke(app, ["provenance", "verify", str(run_data), "--public-key", pub])
    assert r.exit_code == 1 and "signature does not match" in r.output


def test_extra_shards_and_corrupt_files_are_reported(run_data, signed):
    pub = json.loads((run_data / "_croissant.json.sig").read_text())["public_key"]
    shard = sorted(run_data.glob("*.parquet"))[0]
    (run_data / "sub").mkdir()
    shutil.copy(shard, run_data / "sub" / "extra.parquet")
    shutil.copy(shard, run_data / "EXTRA.PARQUET")
    problems = verify_dataset(run_data, public_key=pub).problems
    assert "file sub/extra.parquet is not in the manifest" in problems
    assert "file EXTRA.PARQUET is not in the manifest" in problems
    for name, junk in (("_croissant.json.sig", "{not json"), ("_croissant.json", "[1, 2")):
        (run_data / name).write_text(junk)
        r = runner.invoke(app, ["provenance", "verify", str(run_data), "--public-key", pub])
        assert r.exit_code in (1, 2) and r.exception is None or \
            isinstance(r.exception, SystemExit), r.output
        assert name in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_watermarked_smollm2_text_is_detected_and_the_key_never_written(tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("SYNTHLOOP_WATERMARK_KEY", KEY.decode())
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in [
        "Write a short story about a lighthouse keeper.",
        "Describe a busy market in the morning.",
        "Explain how rain forms, for a child."]))
    out = tmp_path / "wm.jsonl"
    r = runner.invoke(app, ["generate", "--model", "smollm2-135m", "--prompts", str(prompts),
                            "--n", "3", "--out", str(out), "--max-new-tokens", "80",
                            "--temperature", "1.0", "--top-p", "1.0", "--watermark"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    marker = json.loads(rows[0]["watermark"])
    assert marker["key_id"] == key_id(KEY) and marker["scheme"] == "kgw-selfhash"
    assert rows[0]["digital_source_type"].endswith("trainedAlgorithmicMedia")
    for f in [out, *(tmp_path / "wm.jsonl.run").rglob("*")]:
        if f.is_file():
            assert KEY not in f.read_bytes(), f
    r = runner.invoke(app, ["watermark", "detect", str(out), "--json",
                            str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "d.json").read_text())
    long_enough = [x for x in res["results"] if x["tokens_scored"] >= 40]
    assert long_enough and all(x["watermarked"] for x in long_enough)
    human = tmp_path / "h.jsonl"
    human.write_text("".join(json.dumps({"text": json.loads(x)["text"]}) + "\n"
                             for x in (EXAMPLES / "data" / "austen_seeds.jsonl")
                             .read_text().splitlines()))
    r = runner.invoke(app, ["watermark", "detect", str(human)])
    assert r.exit_code == 0 and r.output.startswith("0 of 60 records watermarked")
