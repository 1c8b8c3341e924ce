"""Pipeline runner: stages, exclusions, stats, resume after kill -9, local vs Ray executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synthloop.catalog import parse_config
from synthloop.cli import app
from synthloop.errors import ConfigError
from synthloop.pipeline import run_pipeline
from synthloop.pipeline.runner import stages_of

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEEDS = EXAMPLES / "data" / "austen_seeds.jsonl"
runner = CliRunner()


def _config(model: Path, **over) -> dict:
    cfg = {"name": "t", "seed": 3, "input": str(SEEDS), "shard_size": 6, "steps": [
        {"type": "generate", "backend": {"model": str(model)}, "n_per_record": 2,
         "sampling": {"max_new_tokens": 12}},
        {"type": "quality", "min_words": 4, "rules": ["too_short"]},
        {"type": "exact-dedup"},
        {"type": "minhash-dedup", "threshold": 0.7},
        {"type": "mix", "policy": "accumulate"},
    ]}
    cfg.update(over)
    return cfg


def _data(out: Path) -> pa.Table:
    return pq.read_table(out / "data").drop_columns(["created_at"])


def test_stages_fuse_shard_steps_and_isolate_global_ones(tiny_model):
    _, steps = parse_config(_config(tiny_model))
    assert stages_of(steps) == [[0, 1], [2], [3], [4]]


def test_run_writes_data_exclusions_stats_and_provenance_summary(tiny_model, tmp_path):
    cfg, steps = parse_config(_config(tiny_model))
    res = run_pipeline(cfg, steps, tmp_path / "run")
    data = _data(tmp_path / "run")
    syn = data.filter(pa.compute.equal(data.column("origin"), "synthetic"))
    # 60 seeds × 2 generations; accumulate keeps all 60 real records
    assert res.summary["real"] == 60
    by_step = {s["step"]: s for s in res.stats}
    assert by_step["generate"]["in"] == 60 and by_step["generate"]["out"] == 120
    kept_after_filters = by_step["minhash-dedup"]["out"]
    assert syn.num_rows == kept_after_filters
    # every synthetic record names its seed as parent and sits one hop from real data
    seed_ids = set(pq.read_table(tmp_path / "run" / "stages" / "00-input").column("id")
                   .to_pylist())
    assert all(p[0] in seed_ids for p in syn.column("parents").to_pylist())
    assert set(syn.column("generation").to_pylist()) == {1}
    # what was dropped is kept, with the step and the reason, and nothing else is missing
    exc = pq.read_table(tmp_path / "run" / "excluded")
    assert exc.num_rows == res.summary["dropped_total"]
    assert set(exc.column("drop_step").to_pylist()) <= {"quality", "exact-dedup",
                                                        "minhash-dedup"}
    assert exc.num_rows + syn.num_rows == 120
    assert all(r for r in exc.column("drop_reason").to_pylist())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["synthetic_share"] == pytest.approx(syn.num_rows / data.num_rows)
    assert summary["generators"] == {"tiny": syn.num_rows}


def test_same_seed_same_records_and_rerun_is_a_no_op(tiny_model, tmp_path):
    cfg, steps = parse_config(_config(tiny_model))
    run_pipeline(cfg, steps, tmp_path / "a")
    run_pipeline(cfg, steps, tmp_path / "b")
    assert _data(tmp_path / "a").equals(_data(tmp_path / "b"))
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "a" / "stages").rglob("*.parquet"))
    run_pipeline(cfg, steps, tmp_path / "a")
    after = sorted(p.stat().st_mtime_ns for p in (tmp_path / "a" / "stages").rglob("*.parquet"))
    assert before == after  # nothing recomputed


def test_changed_config_in_the_same_folder_is_refused(tiny_model, tmp_path):
    cfg, steps = parse_config(_config(tiny_model))
    run_pipeline(cfg, steps, tmp_path / "run")
    cfg2, steps2 = parse_config(_config(tiny_model, seed=4))
    with pytest.raises(ConfigError, match="different pipeline"):
        run_pipeline(cfg2, steps2, tmp_path / "run")


def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(tiny_model, tmp_path):
    cfg = _config(tiny_model, shard_size=3)  # 20 shards
    cfg["steps"][0]["sampling"]["max_new_tokens"] = 48
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text(json.dumps(cfg))  # JSON is YAML
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "synthloop.cli", "run", str(yaml_path), "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    stage = run / "stages" / "01-generate"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(stage.glob("*.done"))) < 4:
        time.sleep(0.05)
    done_at_kill = len(list(stage.glob("*.done")))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 4 <= done_at_kill < 20, "the kill must land mid-stage"
    assert not (run / "data").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout
    cfg_obj, steps = parse_config(cfg)
    run_pipeline(cfg_obj, steps, tmp_path / "clean")
    killed, clean = pq.read_table(run / "data"), pq.read_table(tmp_path / "clean" / "data")
    # same records, same bytes except the run's start time
    assert killed.drop_columns(["created_at"]).equals(clean.drop_columns(["created_at"]))
    ids = killed.column("id").to_pylist()
    syn = [i for i, o in zip(ids, killed.column("origin").to_pylist(), strict=True)
           if o == "synthetic"]
    assert len(syn) == len(set(syn))
    exc = pq.read_table(run / "excluded")
    assert exc.num_rows + len(syn) == 120


def test_ray_executor_gives_the_same_output_as_local(tiny_model, tmp_path):
    import ray.data  # noqa: F401  (installed by make: requirements.lock)
    cfg, steps = parse_config(_config(tiny_model, workers=2))
    run_pipeline(cfg, steps, tmp_path / "local", executor="local")
    run_pipeline(cfg, steps, tmp_path / "ray", executor="ray")
    assert _data(tmp_path / "ray").equals(_data(tmp_path / "local"))
    assert pq.read_table(tmp_path / "ray" / "excluded").num_rows == \
        pq.read_table(tmp_path / "local" / "excluded").num_rows


@pytest.mark.parametrize("text,message", [
    ("steps: [{type: nope}]\ninput: x.jsonl", "steps[0]: unknown step type 'nope'"),
    ("input: x.jsonl\nsteps:\n  - type: minhash-dedup\n    threshold: 2",
     "steps[0] (minhash-dedup): threshold: Input should be less than or equal to 1"),
    ("input: x.jsonl\nsteps:\n  - type: quality\n    colour: red",
     "steps[0] (quality): colour: unknown field"),
    ("input: x.jsonl\nsteps: [{type: mix, policy: sometimes}]", "unknown policy 'sometimes'"),
    ("steps: [{type: quality}]", "give exactly one of 'input'"),
    ("input: x.jsonl\nsteps: [{type: quality]\n", "line 2"),
    ("input: x.jsonl\nsteps: []", "steps: List should have at least 1 item"),
])
def test_bad_pipeline_yaml_is_one_clear_line(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    r = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert message in r.output
    assert "Traceback" not in r.output


def test_missing_input_file_is_one_clear_line(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("input: nowhere.jsonl\nsteps: [{type: quality}]\n")
    r = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "nowhere.jsonl: no such file" in r.output


def test_step_needing_a_missing_field_names_it(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"body": "hello there"}\n')
    p = tmp_path / "p.yaml"
    p.write_text(f"input: {data}\nsteps: [{{type: quality}}]\n")
    r = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "step quality: records have no field 'text'" in r.output
