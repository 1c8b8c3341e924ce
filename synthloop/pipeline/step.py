"""The Step protocol: one small operation over a table of records.

A step is a pydantic model (its fields are its YAML parameters, validated on load) with a type
name. Three shapes cover the ladder:

- :class:`Filter` implements ``reasons(table, ctx)``: one reason per row, ``None`` to keep it;
  dropped rows go to the exclusion dataset with their reason.
- :class:`Scorer` implements ``scores(table, ctx)``: new columns (score now, decide later with a
  separate threshold filter).
- any other step implements ``apply(table, ctx)`` and returns kept and dropped rows itself
  (generators, dedup, mixing).

A step's ``scope`` is ``"shard"`` (it sees one shard at a time; the executor runs shards in
parallel and checkpoints each) or ``"global"`` (it sees the whole dataset: deduplication,
mixing, diversity selection).
"""

from __future__ import annotations

import hashlib
import re
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from synthloop.configs import Config
from synthloop.errors import ConfigError, InputError
from synthloop.progress import NullProgress, Progress


class Resources:
    """Per-process cache of heavy objects (models, embedders, reference tables).

    Steps ask for what they need through the context; a worker process (or Ray actor) keeps
    one ``Resources`` for its lifetime, so a model loads once per worker, not once per shard.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple, Any] = {}

    def get(self, key: tuple, build) -> Any:
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]


@dataclass
class StepContext:
    """What a step knows about where it runs.

    Attributes:
        seed: seed for this step on this shard (derived from the pipeline seed, the step's
            position and the shard index, so reruns repeat it exactly).
        shard: shard index (``-1`` for a global step).
        run_id: the run's id, stamped into generated records.
        created_at: the run's timestamp, stamped into generated records (fixed at the run's
            first start so a resumed shard is byte-identical to an uninterrupted one).
        base_dir: folder that relative paths in the configuration are resolved against.
        source: path of the pipeline's input dataset.
    """

    seed: int
    shard: int = -1
    run_id: str = "run"
    created_at: str = "1970-01-01T00:00:00+00:00"
    base_dir: Path = Path(".")
    source: Path | None = None
    resources: Resources = field(default_factory=Resources)
    progress: Progress = field(default_factory=NullProgress)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def path(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


@dataclass
class StepOutput:
    """Rows a step keeps, and rows it drops with one reason each."""

    kept: pa.Table
    dropped: pa.Table | None = None
    reasons: Sequence[str] = ()

    def __post_init__(self) -> None:
        n = 0 if self.dropped is None else self.dropped.num_rows
        if len(self.reasons) != n:
            raise ValueError(f"{n} dropped rows but {len(self.reasons)} reasons")


class Step(Config):
    """Base of every pipeline step (see the module docstring); a step is a
    :class:`~synthloop.configs.Config`: unknown fields are errors, instances are frozen."""

    kind: ClassVar[str] = ""
    scope: ClassVar[str] = "shard"

    name: str | None = None

    @property
    def label(self) -> str:
        """The name stats and exclusions use: ``name`` if given, else the type."""
        return self.name or self.kind

    def fingerprint(self) -> str:
        """Hash of the step's type and parameters (a changed step invalidates checkpoints)."""
        text = f"{self.kind}:{self.model_dump_json()}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def preflight(self, base_dir: Path) -> None:
        """Check, before a run writes anything, what the configuration alone can tell:
        referenced files exist and parse, keys and tools are at hand. Raise
        :class:`~synthloop.errors.ConfigError`; the default checks nothing."""

    @abstractmethod
    def apply(self, table: pa.Table, ctx: StepContext) -> StepOutput: ...


class Filter(Step):
    """A step that keeps or drops rows; implement :meth:`reasons`."""

    @abstractmethod
    def reasons(self, table: pa.Table, ctx: StepContext) -> list[str | None]:
        """One entry per row: ``None`` keeps it, a string drops it and says why."""

    def apply(self, table: pa.Table, ctx: StepContext) -> StepOutput:
        if table.num_rows == 0:
            return StepOutput(table)
        why = self.reasons(table, ctx)
        if len(why) != table.num_rows:
            raise RuntimeError(f"step {self.label}: {len(why)} reasons for {table.num_rows} rows")
        return split(table, why)


class Scorer(Step):
    """A step that adds score columns; implement :meth:`scores`."""

    @abstractmethod
    def scores(self, table: pa.Table, ctx: StepContext) -> dict[str, pa.Array | list]:
        """New columns by name, one value per row (an existing column is replaced)."""

    def apply(self, table: pa.Table, ctx: StepContext) -> StepOutput:
        if table.num_rows == 0:
            return StepOutput(table)
        out = table
        for name, values in self.scores(table, ctx).items():
            arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
            if name in out.column_names:
                out = out.set_column(out.column_names.index(name), name, arr)
            else:
                out = out.append_column(name, arr)
        return StepOutput(out)


def split(table: pa.Table, reasons: Sequence[str | None]) -> StepOutput:
    """Kept rows (reason ``None``) and dropped rows with their reasons, order preserved."""
    drop = np.array([r is not None for r in reasons], dtype=bool)
    if not drop.any():
        return StepOutput(table)
    return StepOutput(table.filter(pa.array(~drop)), table.filter(pa.array(drop)),
                      [r for r in reasons if r is not None])


def text_column(table: pa.Table, field_name: str, step: str) -> list[str]:
    """The strings of ``field_name``, or a clear error naming the step and the field."""
    if field_name not in table.column_names:
        raise InputError(f"step {step}: records have no field '{field_name}' "
                         f"(fields: {', '.join(table.column_names)})")
    return [v if v is not None else "" for v in table.column(field_name).to_pylist()]


STEP_TYPES: dict[str, type[Step]] = {}


def register(cls: type[Step]) -> type[Step]:
    """Class decorator: make a step type available to pipeline configurations."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    STEP_TYPES[cls.kind] = cls
    return cls


def reason_class(reason: str) -> str:
    """A drop reason with numbers and record ids blanked, for counting reasons by kind."""
    reason = re.sub(r"\b[0-9a-f]{64}\b", "<id>", reason)
    reason = re.sub(r"'[^']*'", "'…'", reason)
    return re.sub(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", "#", reason)


def check_real_path(real: str | None, base_dir: Path, label: str) -> None:
    """Preflight of a step that reads real data from ``real`` (None: the pipeline input)."""
    if real is None:
        return
    path = Path(real).expanduser()
    path = path if path.is_absolute() else Path(base_dir) / path
    if not path.exists():
        raise ConfigError(f"step {label}: real: {path}: no such file or directory")

