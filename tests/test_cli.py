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
