"""Executors: run the shard tasks of one stage, locally (in-process or worker processes) or on
Ray Data. Steps are not touched: an executor only decides where ``run_shard`` is called.

Every task writes its output shard, its exclusion shard and then its completion marker, each
atomically; a task whose marker exists is never run again, so a killed run resumes without
losing or duplicating records.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthloop.errors import ConfigError
from synthloop.pipeline.step import Resources, Step, StepContext
from synthloop.records.io import write_parquet, write_text_atomic
from synthloop.records.schema import concat_records


@dataclass(frozen=True)
class ShardTask:
    """One shard of one stage: where to read, where to write, and the seeds of its steps."""

    stage: int
    shard: int
    input: str
    output: str
    excluded: str
    marker: str
    seeds: tuple[int, ...]
    run_id: str
    created_at: str
    base_dir: str
    source: str | None


def excluded_table(dropped: pa.Table, step: str, reasons: Sequence[str]) -> pa.Table:
    """Dropped rows with the step that dropped them and why."""
    return dropped.append_column("drop_step", pa.array([step] * dropped.num_rows, pa.string())) \
        .append_column("drop_reason", pa.array(list(reasons), pa.string()))


def apply_steps(table: pa.Table, steps: Sequence[Step], contexts: Sequence[StepContext]
                ) -> tuple[pa.Table, list[pa.Table], list[dict]]:
    """Run steps in order; returns kept rows, exclusion tables and per-step stats."""
    excluded, stats = [], []
    for step, ctx in zip(steps, contexts, strict=True):
        t0 = time.perf_counter()
        n_in = table.num_rows
        out = step.apply(table, ctx)
        if out.dropped is not None and out.dropped.num_rows:
            excluded.append(excluded_table(out.dropped, step.label, out.reasons))
        table = out.kept
        stats.append({"step": step.label, "type": step.kind, "in": n_in,
                      "out": table.num_rows,
                      "dropped": 0 if out.dropped is None else out.dropped.num_rows,
                      "seconds": round(time.perf_counter() - t0, 4)})
    return table, excluded, stats


def run_shard(task: ShardTask, steps: Sequence[Step], resources: Resources) -> dict:
    """Run a stage's steps over one shard and commit it (output, exclusions, marker)."""
    table = pq.read_table(task.input)
    contexts = [StepContext(seed=s, shard=task.shard, run_id=task.run_id,
                            created_at=task.created_at, base_dir=Path(task.base_dir),
                            source=Path(task.source) if task.source else None,
                            resources=resources) for s in task.seeds]
    table, excluded, stats = apply_steps(table, steps, contexts)
    write_parquet(table, task.output)
    if excluded:
        write_parquet(concat_records(excluded), task.excluded)
    else:
        Path(task.excluded).unlink(missing_ok=True)
    result = {"stage": task.stage, "shard": task.shard, "rows": table.num_rows, "steps": stats}
    write_text_atomic(json.dumps(result), task.marker)
    return result


class Executor(ABC):
    """Runs shard tasks; ``on_done`` receives each task's result as it completes."""

    name = "executor"

    @abstractmethod
    def run(self, steps: Sequence[Step], tasks: Sequence[ShardTask],
            on_done: Callable[[dict], None]) -> None: ...

    def close(self) -> None:  # noqa: B027 — most executors hold nothing to release
        """Release workers (called once at the end of a run)."""


_WORKER_RESOURCES: Resources | None = None


def _worker_init() -> None:
    global _WORKER_RESOURCES
    _WORKER_RESOURCES = Resources()
    import torch

    torch.set_num_threads(1)


def _worker_run(task: ShardTask, steps: Sequence[Step]) -> dict:
    assert _WORKER_RESOURCES is not None
    return run_shard(task, steps, _WORKER_RESOURCES)


class LocalExecutor(Executor):
    """In-process when ``workers`` is 1 (models load once); otherwise a pool of ``workers``
    spawned processes, each keeping its own loaded models."""

    name = "local"

    def __init__(self, workers: int = 1, resources: Resources | None = None) -> None:
        self.workers = workers
        self.resources = resources or Resources()
        self._pool = None

    def run(self, steps, tasks, on_done):
        if self.workers == 1 or len(tasks) <= 1:
            for t in tasks:
                on_done(run_shard(t, steps, self.resources))
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_worker_init)
        futures = [self._pool.submit(_worker_run, t, list(steps)) for t in tasks]
        for f in as_completed(futures):
            on_done(f.result())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


class _RayShardRunner:
    """A Ray Data actor: keeps its own loaded models across the shards it runs."""

    def __init__(self, steps: list[Step]) -> None:
        import torch

        torch.set_num_threads(1)
        self.steps = steps
        self.resources = Resources()

    def __call__(self, batch: dict) -> dict:
        results = []
        for i in range(len(batch["shard"])):
            task = ShardTask(**{k: (tuple(int(x) for x in v[i]) if k == "seeds" else
                                    (None if k == "source" and not v[i] else
                                     (int(v[i]) if k in ("stage", "shard") else str(v[i]))))
                                for k, v in batch.items()})
            results.append(json.dumps(run_shard(task, self.steps, self.resources)))
        return {"result": results}


class RayExecutor(Executor):
    """Ray Data: shard tasks become rows of a dataset mapped by an actor pool of
    ``workers`` actors (``map_batches``, one shard per batch). Connects to the cluster in
    ``RAY_ADDRESS`` when set, else starts a local Ray instance with ``workers`` CPUs."""

    name = "ray"

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._started = False

    def _init(self) -> None:
        import ray

        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        kwargs = {"include_dashboard": False, "log_to_driver": False,
                  "configure_logging": False}
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], **kwargs)
        else:
            ray.init(num_cpus=self.workers, **kwargs)
        self._started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False

    def run(self, steps, tasks, on_done):
        if not tasks:
            return
        import ray

        self._init()
        items = [{**asdict(t), "seeds": list(t.seeds), "source": t.source or ""}
                 for t in tasks]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(_RayShardRunner, fn_constructor_kwargs={"steps": list(steps)},
                            batch_size=1, concurrency=min(self.workers, len(items)),
                            num_cpus=1, batch_format="numpy")
        for row in ds.iter_rows():
            on_done(json.loads(row["result"]))

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def make_executor(name: str, workers: int, resources: Resources | None = None) -> Executor:
    if name == "local":
        return LocalExecutor(workers, resources)
    if name == "ray":
        try:
            import ray  # noqa: F401
            import ray.data  # noqa: F401
        except ImportError:
            raise ConfigError("executor ray needs Ray Data: pip install 'ray[data]'",
                              fields=("executor",)) \
                from None
        return RayExecutor(workers)
    raise ConfigError(f"unknown executor '{name}' (use local or ray)")
