from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synthloop.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_missing_corpus_is_one_line_no_traceback(tmp_path: Path):
    r = _cli("collapse", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "nope" in lines[0] and "error" in lines[0]


def test_bad_policy_names_it(tmp_path: Path):
    (tmp_path / "c.txt").write_text("some text " * 100)
    r = _cli("collapse", "--corpus", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"),
             "--policies", "replace,keep-real:7")
    assert r.returncode == 2 and "keep-real:7" in r.stderr and "Traceback" not in r.stderr


def test_non_utf8_corpus(tmp_path: Path):
    (tmp_path / "c.txt").write_bytes(b"hello\n\xff\n")
    r = _cli("collapse", "--corpus", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "line 2" in r.stderr and "UTF-8" in r.stderr


def test_collapse_cli_runs(small_corpus: Path, tmp_path: Path):
    out = tmp_path / "o"
    r = _cli("collapse", "--corpus", str(small_corpus), "--out", str(out), "--generations", "2",
             "--policies", "replace,accumulate", "--seeds", "1", "--max-train-blocks", "40",
             "--max-test-blocks", "20", "--block-tokens", "24", "--prompt-tokens", "8",
             "--new-tokens", "16", "--vocab-size", "300", "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert "replace" in r.stdout and (out / "report.html").exists()


def test_kill_9_then_rerun_resumes_without_losing_or_duplicating(small_corpus: Path,
                                                                 tmp_path: Path):
    import json
    import os
    import signal
    import time

    out = tmp_path / "o"
    args = ["collapse", "--corpus", str(small_corpus), "--out", str(out), "--generations", "4",
            "--policies", "replace,accumulate", "--seeds", "1", "--max-train-blocks", "60",
            "--max-test-blocks", "20", "--block-tokens", "24", "--prompt-tokens", "8",
            "--new-tokens", "24", "--vocab-size", "300", "--epochs", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "synthloop.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "runs" / "replace" / "seed0" / "gen1" / "metrics.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert first.exists(), "the run never finished generation 1"
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup: a real crash
    proc.wait()
    done_before = {p: p.read_bytes() for p in (out / "runs").rglob("metrics.json")}
    assert len(done_before) < 2 * 4  # it really was cut short

    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    rows = json.loads((out / "results.json").read_text())["runs"]
    keys = sorted((x["policy"], x["generation"]) for x in rows)
    assert keys == sorted((p, g) for p in ("replace", "accumulate") for g in range(4))
    for path, data in done_before.items():  # finished generations were not redone
        assert path.read_bytes() == data
    acc = out / "runs" / "accumulate" / "seed0" / "gen3" / "train.parquet"
    import pyarrow.parquet as pq

    gens = pq.read_table(acc).column("generation").to_pylist()
    assert all(gens.count(g) == 60 for g in range(4))  # no record lost or doubled
