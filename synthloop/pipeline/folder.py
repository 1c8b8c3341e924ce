"""The run folder's layout, in one place: every path a run writes or reads back.

::

    OUT/pipeline.json          config, fingerprint, run id, start time (fixed at first start)
    OUT/stages/NN-LABEL/       each stage's shards part-XXXXX.parquet + .done markers, _DONE
    OUT/stages/00-input/_DONE  the input's shard count, rows and source path
    OUT/excluded/              every dropped record with drop_step and drop_reason
    OUT/data/                  the final dataset (Parquet shards; a manifest may sit beside)
    OUT/stats.json             per step: records in/out/dropped, seconds
    OUT/summary.json           provenance: synthetic share, generators, depths, drops by step
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from synthloop.pipeline.step import reason_class
from synthloop.records.io import dataset_files, read_parquet_file
from synthloop.records.lineage import lineage_summary, read_lineage_columns


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run folder ``root``."""

    root: Path

    PARTS = ("pipeline.json", "stages", "excluded", "data", "stats.json", "summary.json")

    @classmethod
    def of_data(cls, data: str | Path) -> RunFolder | None:
        """The run whose published ``data/`` folder ``data`` is, or None (any other folder)."""
        d = Path(data)
        run = cls(d.parent)
        return run if d.is_dir() and d.name == "data" and run.meta_path.is_file() else None

    @property
    def meta_path(self) -> Path:
        return self.root / "pipeline.json"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def input_stage(self) -> Path:
        return self.stages / "00-input"

    @property
    def excluded(self) -> Path:
        return self.root / "excluded"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def stats_path(self) -> Path:
        return self.root / "stats.json"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    def stage(self, index: int, label: str) -> Path:
        return self.stages / f"{index:02d}-{label}"

    def read_meta(self) -> dict:
        """``pipeline.json`` as a dict (empty when missing or unreadable)."""
        return _read_dict(self.meta_path)

    def input_source(self) -> str | None:
        """The input's path as the run resolved it (None before the input was read)."""
        return _read_dict(self.input_stage / "_DONE").get("source")

    def committed_work(self) -> bool:
        """True once the run committed a shard or stage past reading its input."""
        if not self.stages.is_dir():
            return False
        for d in self.stages.iterdir():
            if d.name.startswith("00-") or not d.is_dir():
                continue
            if (d / "_DONE").exists() or any(d.glob("part-*.done")):
                return True
        return False


    def drops(self) -> dict:
        """What the run dropped: ``{"dropped": {step: {"records": n, "reasons": {kind: n}}},
        "dropped_total": n}`` (the ten most frequent reason kinds per step)."""
        by_step: dict[str, dict] = defaultdict(lambda: {"records": 0, "reasons": Counter()})
        if self.excluded.is_dir():
            for p in sorted(self.excluded.glob("*.parquet")):
                t = read_parquet_file(p, ["drop_step", "drop_reason"])
                for step, reason in zip(t.column("drop_step").to_pylist(),
                                        t.column("drop_reason").to_pylist(), strict=True):
                    by_step[step]["records"] += 1
                    by_step[step]["reasons"][reason_class(reason)] += 1
        return {"dropped": {k: {"records": v["records"],
                                "reasons": dict(v["reasons"].most_common(10))}
                            for k, v in by_step.items()},
                "dropped_total": sum(v["records"] for v in by_step.values())}

    def lineage(self) -> dict:
        """The lineage of the run's published dataset
        (:func:`~synthloop.records.lineage.lineage_summary`) plus :meth:`drops`."""
        files = shard_files(self.data) if self.data.is_dir() else []
        return {**lineage_summary(read_lineage_columns(files)), **self.drops()}


def shard_files(folder: Path) -> list[Path]:
    """The Parquet shards of a stage or dataset folder, in order."""
    return sorted(Path(folder).glob("part-*.parquet"))


def dataset_lineage(path: str | Path) -> dict:
    """The lineage of a Parquet dataset (a file or a folder of shards); for a pipeline run's
    ``data/`` folder, with what the run dropped (:meth:`RunFolder.lineage`). Streams shard by
    shard, reading only the provenance columns."""
    run = RunFolder.of_data(path)
    if run is not None:
        return run.lineage()
    _, files = dataset_files(path)
    return lineage_summary(read_lineage_columns(files))


def _read_dict(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}

