"""``synthloop audit`` from the command line: outputs, exit codes, one-line errors, the page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import austen


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthloop.cli", "audit", *args],
                          capture_output=True, text=True, timeout=timeout)


def _one_error_line(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def text_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("text")
    text = austen("persuasion")
    paras = [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) >= 8]
    np.random.default_rng(0).shuffle(paras)

    def write(name: str, docs: list[str]) -> Path:
        p = d / name
        p.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs), encoding="utf-8")
        return p

    return {"real": write("real.jsonl", paras[:400]),
            "narrow": write("narrow.jsonl", [paras[i % 15] for i in range(120)]),
            "fresh": write("fresh.jsonl", paras[400:520])}


def test_text_audit_writes_report_json_and_gates(text_files, tmp_path):
    out, js = tmp_path / "r.html", tmp_path / "a.json"
    r = _cli("--real", str(text_files["real"]), "--synthetic", str(text_files["narrow"]),
             "--out", str(out), "--json", str(js), "--no-embeddings", "--ppl-docs", "12",
             "--fail-under", "0.8")
    assert r.returncode == 1, r.stderr  # below --fail-under
    assert "fail: score" in r.stderr and "Traceback" not in r.stderr
    data = json.loads(js.read_text())
    assert data["kind"] == "text" and data["score"] < 0.8 and data["grade"] in "DF"
    names = {m["name"] for m in data["metrics"]}
    assert {"median_perplexity", "distinct_2", "rare_ngram_recall", "verbatim_overlap",
            "self_bleu", "near_duplicate_rate", "pii_rate"} <= names
    ppl = next(m for m in data["metrics"] if m["name"] == "median_perplexity")
    assert 1 < ppl["value"] < 1000 and 1 < ppl["baseline"] < 1000
    share = next(m for m in data["metrics"] if m["name"] == "ai_share")  # (#10) both sides
    assert share["prop"] == "provenance" and share["score"] is None
    assert 0 <= share["breakdown"]["holdout"]["low"] <= share["breakdown"]["holdout"]["high"]
    assert share["breakdown"]["calibration"]["fpr"] == 0.01
    assert {"tails", "diversity"} <= {w["prop"] for w in data["warnings"]}
    html = out.read_text()
    assert html.startswith("<!doctype html>") and "Warnings" in html
    assert "<script src=" not in html and "Plotly.newPlot" in html  # inlined: opens offline


def test_fresh_text_passes_the_gate(text_files, tmp_path):
    r = _cli("--real", str(text_files["real"]), "--synthetic", str(text_files["fresh"]),
             "--no-embeddings", "--ppl-model", "none", "--fail-under", "0.8",
             "--fail-on-warning")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no warnings" in r.stdout


def test_bad_inputs_are_one_line(text_files, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _one_error_line(_cli("--real", str(text_files["real"]), "--synthetic", str(empty)),
                    "empty.jsonl", "empty")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    _one_error_line(_cli("--real", str(text_files["real"]), "--synthetic", str(bad),
                         "--kind", "text"), "bad.jsonl", "line 2")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{"text": \n')
    _one_error_line(_cli("--real", str(text_files["real"]), "--synthetic", str(broken),
                         "--kind", "text"), "broken.jsonl", "line 2")
    _one_error_line(_cli("--real", str(text_files["real"]), "--synthetic",
                         str(text_files["fresh"]), "--kind", "text", "--text-field", "body"),
                    "'body'")
    _one_error_line(_cli("--real", str(text_files["real"]), "--synthetic",
                         str(text_files["fresh"]), "--text-field", "body"), "identifier-like")
    _one_error_line(_cli("--real", str(text_files["real"]), "--synthetic",
                         str(text_files["fresh"]), "--fail-under", "80"), "--fail-under")
    real_csv, syn_csv = tmp_path / "real.csv", tmp_path / "syn.csv"
    real_csv.write_text("a,b\n1,x\n2,y\n3,x\n4,y\n")
    syn_csv.write_text("a,c\n1,x\n2,y\n")
    _one_error_line(_cli("--real", str(real_csv), "--synthetic", str(syn_csv)), "'b'")
    head_only = tmp_path / "head.csv"
    head_only.write_text("a,b\n")
    _one_error_line(_cli("--real", str(real_csv), "--synthetic", str(head_only)), "head.csv")


def _rendered_dom(page: Path) -> str:
    """The page's DOM after its scripts ran in headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs chromium (.ci/run); it is missing")
        pytest.skip("not tested: HTML reports in headless Chromium "
                    "(enable: apt-get install chromium)")
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120).stdout


def test_text_report_renders_in_headless_chromium(text_files, tmp_path):
    out = tmp_path / "r.html"
    r = _cli("--real", str(text_files["real"]), "--synthetic", str(text_files["narrow"]),
             "--out", str(out), "--ppl-model", "none")
    assert r.returncode == 0, r.stderr
    dom = _rendered_dom(out)
    assert "Warnings" in dom and "Diversity collapsed" in dom
    assert dom.count("main-svg") >= 4  # plotly drew the metric bars and the figures


def test_table_audit_cli_and_report(tmp_path):
    import vega_datasets as vega
    df = vega.local_data.seattle_weather().sample(frac=1, random_state=0)
    real, syn, hold = tmp_path / "real.csv", tmp_path / "syn.parquet", tmp_path / "h.jsonl"
    df.iloc[:1000].to_csv(real, index=False)
    df.iloc[1200:1400].to_json(hold, orient="records", lines=True, date_format="iso")
    copied = df.iloc[:25]  # 25 training rows copied into the synthetic set
    import pandas as pd

    pd.concat([df.iloc[1000:1200], copied]).to_parquet(syn)
    out, js = tmp_path / "t.html", tmp_path / "t.json"
    r = _cli("--real", str(real), "--synthetic", str(syn), "--holdout", str(hold),
             "--target", "weather",
             "--column-type", "date=datetime", "--out", str(out), "--json", str(js),
             "--fail-on-warning")
    assert r.returncode == 1, r.stderr  # the copied rows are a critical privacy warning
    data = json.loads(js.read_text())
    assert data["kind"] == "table"
    ident = next(m for m in data["metrics"] if m["name"] == "identical_match_share")
    assert ident["value"] == pytest.approx(25 / 225)
    assert data["warnings"][0]["level"] == "critical"
    link = next(m for m in data["metrics"] if m["name"] == "linkability_risk")
    assert link["breakdown"]["low"] <= link["value"] <= link["breakdown"]["high"]
    assert {"original", "control", "naive", "holdout"} <= set(link["breakdown"])
    # targets: at most attack_rows (1000) per side; the 200 holdout rows are the control
    assert (link["breakdown"]["original"]["n"], link["breakdown"]["control"]["n"]) == (1000, 200)
    assert {m["name"] for m in data["metrics"]} >= {"singling_out_risk", "inference_risk",
                                                    "membership_auc"}
    dom = _rendered_dom(out)
    assert "exact copies" in dom and dom.count("main-svg") >= 6
    assert "Privacy attacks" in dom
