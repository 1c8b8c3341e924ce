"""Run a pipeline into a run folder, checkpointing every shard; summarise its provenance.

The run folder's layout is :class:`~synthloop.pipeline.folder.RunFolder`'s.

Consecutive shard-scope steps form one stage and run shard by shard (in parallel on the
executor); a global step is a stage of its own over the whole dataset. A rerun with the same
configuration skips every committed shard and stage; a different configuration in the same
folder is refused.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthloop.errors import ConfigError
from synthloop.pipeline.config import PipelineConfig, fingerprint
from synthloop.pipeline.executors import (
    ShardTask,
    apply_steps,
    make_executor,
)
from synthloop.pipeline.folder import RunFolder, shard_files
from synthloop.pipeline.step import Resources, Step, StepContext
from synthloop.progress import NullProgress, Progress
from synthloop.records.io import (
    read_records,
    remove_orphan_temporaries,
    write_parquet,
    write_text_atomic,
)
from synthloop.records.schema import concat_records, utc_now
from synthloop.records.taxonomy import read_taxonomy
from synthloop.seeds import derive_seed


def stages_of(steps: Sequence[Step]) -> list[list[int]]:
    """Step indices grouped into stages: runs of shard steps, each global step alone."""
    stages: list[list[int]] = []
    for i, s in enumerate(steps):
        if s.scope == "global" or not stages or steps[stages[-1][-1]].scope == "global":
            stages.append([i])
        else:
            stages[-1].append(i)
    return stages


@dataclass
class RunResult:
    """Where a run wrote its outputs, and what it measured."""

    out: Path
    data: Path
    excluded: Path
    stats: list[dict]
    summary: dict


def _write_shards(table: pa.Table, folder: Path, shard_size: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    n = max(1, -(-table.num_rows // shard_size))
    for k in range(n):
        write_parquet(table.slice(k * shard_size, shard_size), folder / f"part-{k:05d}.parquet")
    return n


def read_shards(paths: Sequence[Path]) -> pa.Table:
    """Shards concatenated into one table (columns missing from a shard become null)."""
    tables = [pq.read_table(p) for p in paths]
    return concat_records(tables) if len(tables) > 1 else tables[0]


def _read_input(cfg: PipelineConfig, base_dir: Path) -> tuple[pa.Table, Path]:
    if cfg.taxonomy:
        path = (base_dir / cfg.taxonomy).resolve()
        return read_taxonomy(path), path
    path = (base_dir / cfg.input).resolve()
    return read_records(path, text_column="text"), path  # a text column, if any, is checked


def committed_work(out: Path) -> bool:
    """True once a run in ``out`` has committed a shard or stage past reading its input."""
    return RunFolder(Path(out)).committed_work()


def _clear_run(out: Path) -> None:
    for name in RunFolder.PARTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _open_run(cfg: PipelineConfig, steps: Sequence[Step], out: Path) -> dict:
    run = RunFolder(out)
    meta_path = run.meta_path
    fp = fingerprint(cfg, list(steps))
    if out.is_dir():
        remove_orphan_temporaries(out)  # left by a killed writer; never part of a result
    if meta_path.is_file():
        meta = run.read_meta()
        if meta.get("fingerprint") != fp:
            if committed_work(out):
                raise ConfigError(f"{out}: holds a run of a different pipeline configuration; "
                                  f"use another output folder (or delete this one)")
            _clear_run(out)  # an earlier run failed before committing anything: start over
        else:
            return meta
    meta = {"name": cfg.name, "fingerprint": fp, "run_id": f"{cfg.name}-{fp[:12]}",
            "created_at": utc_now(), "config": cfg.model_dump(mode="json")}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(meta, indent=2), meta_path)
    return meta


def run_pipeline(cfg: PipelineConfig, steps: Sequence[Step], out: str | Path, *,
                 base_dir: str | Path = ".", executor: str | None = None,
                 workers: int | None = None, progress: Progress | None = None) -> RunResult:
    """Run (or resume) ``steps`` over the configured input into the folder ``out``.

    Args:
        executor: ``local`` or ``ray`` (default: the configuration's).
        workers: parallel shard workers (default: the configuration's).
    """
    progress = progress or NullProgress()
    out, base_dir = Path(out), Path(base_dir).resolve()
    for step in steps:  # what the configuration alone can tell fails before anything is written
        step.preflight(base_dir)
    fresh = not out.exists()
    try:
        return _run(cfg, steps, out, base_dir, executor, workers, progress)
    except BaseException:
        # a run that failed before committing anything leaves nothing behind to block the
        # corrected rerun (a resumable run keeps its checkpoints)
        if not committed_work(out):
            if fresh:
                shutil.rmtree(out, ignore_errors=True)
            elif RunFolder(out).meta_path.exists():
                _clear_run(out)
        raise


def _run(cfg: PipelineConfig, steps: Sequence[Step], out: Path, base_dir: Path,
         executor: str | None, workers: int | None, progress: Progress) -> RunResult:
    meta = _open_run(cfg, steps, out)
    run = RunFolder(out)
    input_dir = run.input_stage
    source: Path | None = None
    if not (input_dir / "_DONE").is_file():
        table, source = _read_input(cfg, base_dir)
        progress.log(f"input: {table.num_rows:,} records from {source}")
        if input_dir.exists():
            shutil.rmtree(input_dir)
        n = _write_shards(table, input_dir, cfg.shard_size)
        write_text_atomic(json.dumps({"shards": n, "rows": table.num_rows,
                                      "source": str(source)}), input_dir / "_DONE")
    source = Path(json.loads((input_dir / "_DONE").read_text())["source"])
    resources = Resources()
    ex = make_executor(executor or cfg.executor, workers or cfg.workers, resources)
    prev = input_dir
    try:
        for s_idx, members in enumerate(stages_of(steps), start=1):
            stage_steps = [steps[i] for i in members]
            folder = run.stage(s_idx, stage_steps[0].label)
            exc_dir = run.excluded
            folder.mkdir(parents=True, exist_ok=True)
            exc_dir.mkdir(parents=True, exist_ok=True)
            if not (folder / "_DONE").is_file():
                if stage_steps[0].scope == "global":
                    _run_global(stage_steps[0], members[0], s_idx, prev, folder, exc_dir, cfg,
                                meta, base_dir, source, resources, progress)
                else:
                    _run_sharded(stage_steps, members, s_idx, prev, folder, exc_dir, cfg, meta,
                                 base_dir, source, ex, progress)
                n_parts = len(shard_files(folder))
                write_text_atomic(json.dumps({"shards": n_parts}), folder / "_DONE")
            prev = folder
    finally:
        ex.close()
    _publish(prev, run.data)
    stats = _collect_stats(run.stages, steps)
    write_text_atomic(json.dumps(stats, indent=2), run.stats_path)
    summary = run.lineage()
    write_text_atomic(json.dumps(summary, indent=2), run.summary_path)
    return RunResult(out, run.data, run.excluded, stats, summary)


def _run_sharded(stage_steps, members, s_idx, prev, folder, exc_dir, cfg, meta, base_dir,
                 source, ex, progress) -> None:
    inputs = shard_files(prev)
    tasks = []
    for k, inp in enumerate(inputs):
        marker = folder / f"part-{k:05d}.done"
        if marker.is_file():
            continue
        tasks.append(ShardTask(
            stage=s_idx, shard=k, input=str(inp), output=str(folder / f"part-{k:05d}.parquet"),
            excluded=str(exc_dir / f"s{s_idx:02d}-part-{k:05d}.parquet"), marker=str(marker),
            seeds=tuple(derive_seed(cfg.seed, i, k) for i in members), run_id=meta["run_id"],
            created_at=meta["created_at"], base_dir=str(base_dir), source=str(source)))
    label = " → ".join(s.label for s in stage_steps)
    progress.stage(f"stage {s_idx}: {label}", len(inputs))
    progress.advance(len(inputs) - len(tasks))
    if tasks and len(tasks) < len(inputs):
        progress.log(f"stage {s_idx}: resuming, {len(inputs) - len(tasks)} of {len(inputs)} "
                     f"shards already done")
    ex.run(stage_steps, tasks, lambda result: progress.advance(1))


def _run_global(step, index, s_idx, prev, folder, exc_dir, cfg, meta, base_dir, source,
                resources, progress) -> None:
    progress.stage(f"stage {s_idx}: {step.label} (whole dataset)", 1)
    for old in [*shard_files(folder), *folder.glob("part-*.done")]:  # all-or-nothing: start clean
        old.unlink()
    table = read_shards(shard_files(prev))
    ctx = StepContext(seed=derive_seed(cfg.seed, index, -1), run_id=meta["run_id"],
                      created_at=meta["created_at"], base_dir=base_dir, source=source,
                      resources=resources, progress=NullProgress())
    kept, excluded, stats = apply_steps(table, [step], [ctx])
    n = _write_shards(kept, folder, cfg.shard_size)
    exc_path = exc_dir / f"s{s_idx:02d}-part-00000.parquet"
    if excluded:
        write_parquet(excluded[0], exc_path)
    for k in range(n):
        write_text_atomic(json.dumps({"stage": s_idx, "shard": k, "rows": -1,
                                      "steps": stats if k == 0 else []}),
                          folder / f"part-{k:05d}.done")
    progress.advance(1)


def _publish(stage: Path, data: Path) -> None:
    """Copy the last stage's shards to ``data/`` (copies, not links: editing the published
    dataset must not touch the checkpoints a resumed run relies on)."""
    tmp = data.with_name(f".{data.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for p in shard_files(stage):
        shutil.copy2(p, tmp / p.name)
    if data.exists():
        shutil.rmtree(data)
    tmp.rename(data)


def _collect_stats(stage_root: Path, steps: Sequence[Step]) -> list[dict]:
    agg: dict[str, dict] = {}
    for marker in sorted(stage_root.glob("*/part-*.done")):
        for s in json.loads(marker.read_text())["steps"]:
            a = agg.setdefault(s["step"], {"step": s["step"], "type": s["type"], "in": 0,
                                           "out": 0, "dropped": 0, "seconds": 0.0})
            for key in ("in", "out", "dropped"):
                a[key] += s[key]
            a["seconds"] = round(a["seconds"] + s["seconds"], 3)
    return [agg[s.label] for s in steps if s.label in agg]


def wait_for(path: Path, timeout_s: float) -> bool:
    """Poll until ``path`` exists (helper for tests and scripts that watch a run)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if path.exists():
            return True
        time.sleep(0.05)
    return False
