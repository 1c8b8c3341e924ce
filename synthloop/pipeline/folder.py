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
from dataclasses import dataclass
from pathlib import Path


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


def _read_dict(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}

