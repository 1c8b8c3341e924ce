"""The generations a monitor watches: one dataset per generation, a run folder per generation,
a collapse-lab series, or one mixed dataset split by the depth its lineage columns record.

Each generation is loaded whole (its audit needs it whole, like ``synthloop audit``); only its
content and its depth histogram are kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from synthloop.audit import FeatureMemo
from synthloop.errors import InputError
from synthloop.records.io import (
    TEXT_SUFFIXES,
    load_texts,
    read_csv,
    read_jsonl,
    read_parquet,
)
from synthloop.records.schema import content

#: The lineage columns that give a record's depth: ``origin`` (real/synthetic) and
#: ``generation`` (0 for real data, k for data written by a model k generations removed).
DEPTH_COLUMNS = ("origin", "generation")


@dataclass
class Generation:
    """One generation's data.

    Attributes:
        label: what the report calls it (``gen0``, ``depth 2``...).
        source: where it came from (a path, with the depth when split).
        data: the texts (text) or the content columns (table).
        depths: records per depth (``{generation: count}``) from the lineage columns, or
            None when the data has none.
    """

    label: str
    source: str
    data: list[str] | pd.DataFrame
    depths: dict[int, int] | None = None
    records: int = field(init=False)

    def __post_init__(self) -> None:
        self.records = len(self.data)

    def content_sha256(self) -> str:
        """sha256 of the content (texts, or columns + dtypes + values): the cache key's
        share of this generation."""
        return content_sha256(self.data)


def content_sha256(data: list[str] | pd.DataFrame) -> str:
    """sha256 of a list of texts (:meth:`FeatureMemo.texts_key`) or of a DataFrame's
    columns, dtypes and values."""
    if isinstance(data, pd.DataFrame):
        h = hashlib.sha256()
        h.update(repr([(str(c), str(t)) for c, t in data.dtypes.items()]).encode())
        try:
            h.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
        except TypeError:  # unhashable cells (lists): their text
            h.update(data.to_csv(index=False).encode("utf-8", "surrogatepass"))
        return h.hexdigest()
    return FeatureMemo.texts_key(data)


def _collapse_series(p: Path) -> list[Path] | None:
    """A collapse-lab series folder (``LAB/runs/POLICY/seedS``): its finished generations'
    folders in order, or None for any other folder."""
    gens = [d for d in p.glob("gen*") if d.is_dir() and re.fullmatch(r"gen\d+", d.name)]
    if not gens or not any((d / "synthetic.parquet").is_file() for d in gens):
        return None
    gens.sort(key=lambda d: int(d.name[3:]))
    return [d for d in gens if (d / "metrics.json").is_file()
            and (d / "synthetic.parquet").is_file()]


def collapse_lab_reference(series: str | Path) -> tuple[Path, Path] | None:
    """``(real train, real test)`` of the collapse lab a series folder belongs to
    (``LAB/data/real_train.parquet``, ``LAB/data/real_test.parquet``), or None."""
    p = Path(series)
    if _collapse_series(p) is None:
        return None
    lab = p.parent.parent.parent
    train, test = lab / "data" / "real_train.parquet", lab / "data" / "real_test.parquet"
    return (train, test) if train.is_file() and test.is_file() else None


def _read_table(p: Path, text_field: str) -> pa.Table:
    """A dataset as it is on disk (no provenance added): Parquet file or shards, JSONL, CSV, a
    pipeline run folder (its ``data/``), or plain text (paragraphs)."""
    if p.is_dir() and (p / "pipeline.json").is_file() and (p / "data").is_dir():
        p = p / "data"  # a pipeline run folder: its published dataset
    suffix = p.suffix.lower()
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    if suffix in (".parquet", ".pq") or (p.is_dir() and any(p.glob("*.parquet"))):
        return read_parquet(p)
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(p, text_field=text_field)
    if suffix == ".csv":
        return read_csv(p)
    if suffix in TEXT_SUFFIXES or p.is_dir():
        return pa.table({text_field: load_texts(p, text_field=text_field)})
    raise InputError(f"{p}: unknown format '{suffix}' (expected .jsonl, .csv, .parquet or "
                     f".txt)")


def _depths(table: pa.Table) -> dict[int, int] | None:
    if not all(c in table.column_names for c in DEPTH_COLUMNS):
        return None
    counts = pc.value_counts(table["generation"]).to_pylist()
    return {int(d["values"]): int(d["counts"]) for d in sorted(counts,
                                                               key=lambda d: d["values"])}


def _content(table: pa.Table, kind: str, text_field: str, where: str
             ) -> list[str] | pd.DataFrame:
    if kind == "text":
        if text_field not in table.column_names:
            have = ", ".join(table.column_names)
            raise InputError(f"{where}: no '{text_field}' column (columns: {have})",
                             fields=("text_field",))
        col = table[text_field]
        if col.null_count:
            row = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{where}: row {row}: field '{text_field}' is null")
        return col.to_pylist()
    return content(table).to_pandas()


def load_generation(path: str | Path, label: str, *, kind: str, text_field: str = "text"
                    ) -> Generation:
    """One dataset as one generation."""
    p = Path(path)
    table = _read_table(p, text_field)
    return Generation(label, str(p), _content(table, kind, text_field, str(p)), _depths(table))


def _lab_generation(d: Path, kind: str, text_field: str) -> Generation:
    """A collapse-lab generation: the data its model wrote (``synthetic.parquet``), with the
    depths of the mix that model trained on (``train.parquet``; generation 0 trained on real
    data only) — a model's own output is one generation deeper than its data by definition."""
    g = load_generation(d / "synthetic.parquet", d.name, kind=kind, text_field=text_field)
    train = d / "train.parquet"
    if train.is_file():
        g.depths = _depths(read_parquet(train))
    elif d.name == "gen0":
        g.depths = {0: g.records}
    return g


def split_by_depth(path: str | Path, *, kind: str, text_field: str = "text"
                   ) -> list[Generation]:
    """One mixed dataset as one generation per depth (its ``generation`` lineage column):
    ``depth 0`` is its real records, ``depth k`` what models k generations removed wrote."""
    p = Path(path)
    table = _read_table(p, text_field)
    missing = [c for c in DEPTH_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{p}: no lineage column '{missing[0]}', so its records cannot be "
                         f"split by depth; give one dataset per generation instead")
    gen = table["generation"]
    if gen.null_count:
        row = int(np.flatnonzero(pc.is_null(gen).to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{p}: row {row}: lineage field 'generation' is null")
    out = []
    for depth in sorted(set(gen.to_pylist())):
        part = table.filter(pc.equal(gen, depth))
        out.append(Generation(f"depth {depth}", f"{p} (generation == {depth})",
                              _content(part, kind, text_field, f"{p} (depth {depth})"),
                              {int(depth): part.num_rows}))
    return out


def load_generations(paths: Sequence[str | Path] = (), *, runs: Sequence[str | Path] = (),
                     kind: str, text_field: str = "text", split: bool | None = None
                     ) -> list[Generation]:
    """The generations named by ``paths`` (one dataset each, in order) or ``runs`` (pipeline
    run folders in order, or one collapse-lab series ``LAB/runs/POLICY/seedS``).

    ``split``: split a single dataset by its lineage depth; None = when ``paths`` is one
    dataset whose ``generation`` column holds more than one depth.
    """
    if paths and runs:
        raise InputError("give generations either as datasets or as run folders, not both",
                         fields=("runs",))
    gens: list[Generation] = []
    if runs:
        series = [_collapse_series(Path(r)) for r in runs]
        if any(s is not None for s in series):
            if len(runs) > 1:
                raise InputError(f"{runs[0]}: a collapse-lab series folder is one series; "
                                 f"monitor one at a time", fields=("runs",))
            gens = [_lab_generation(d, kind, text_field) for d in series[0] or []]
        else:
            for i, r in enumerate(runs):
                if not (Path(r) / "pipeline.json").is_file():
                    raise InputError(f"{r}: not a run folder (no pipeline.json) nor a "
                                     f"collapse-lab series (no gen*/synthetic.parquet)",
                                     fields=("runs",))
                gens.append(load_generation(r, f"gen{i}", kind=kind, text_field=text_field))
    elif len(paths) == 1 and split is not False:
        only = load_generation(paths[0], "gen0", kind=kind, text_field=text_field)
        if split or (only.depths is not None and len(only.depths) > 1):
            gens = split_by_depth(paths[0], kind=kind, text_field=text_field)
        else:
            gens = [only]
    else:
        if split:
            raise InputError("split by depth takes one mixed dataset", fields=("split",))
        gens = [load_generation(p, f"gen{i}", kind=kind, text_field=text_field)
                for i, p in enumerate(paths)]
    check_generations(gens, kind)
    return gens


def check_generations(gens: Sequence[Generation], kind: str) -> None:
    """One error line for what a trend cannot be read from: fewer than two generations, an
    empty one, columns that drift between generations, lineage in some but not all."""
    if len(gens) < 2:
        what = f"{gens[0].source}" if gens else "nothing"
        raise InputError(f"a trend needs at least 2 generations, got {len(gens)} ({what}); "
                         f"give one dataset per generation, or one dataset whose lineage "
                         f"column 'generation' holds several depths")
    for g in gens:
        if g.records == 0:
            raise InputError(f"{g.label} ({g.source}): no records")
    with_lineage = [g.label for g in gens if g.depths is not None]
    if with_lineage and len(with_lineage) < len(gens):
        lacking = next(g for g in gens if g.depths is None)
        raise InputError(f"{lacking.label} ({lacking.source}): no lineage columns "
                         f"('origin', 'generation') while {', '.join(with_lineage[:3])} have "
                         f"them; the depth trend needs them in every generation (or none)")
    if kind != "table":
        return
    first = gens[0]
    assert isinstance(first.data, pd.DataFrame)
    ref = {c: _kind_of(first.data[c]) for c in first.data.columns}
    for g in gens[1:]:
        assert isinstance(g.data, pd.DataFrame)
        cols = list(g.data.columns)
        missing = [c for c in ref if c not in cols]
        extra = [c for c in cols if c not in ref]
        if missing or extra:
            parts = ([f"missing {', '.join(repr(c) for c in missing)}"] if missing else []) + \
                ([f"extra {', '.join(repr(c) for c in extra)}"] if extra else [])
            raise InputError(f"{g.label} ({g.source}): columns drift from {first.label}: "
                             f"{'; '.join(parts)}")
        for c in cols:
            k = _kind_of(g.data[c])
            if k != ref[c] and "empty" not in (k, ref[c]):
                raise InputError(f"{g.label} ({g.source}): column '{c}' is {k} but {ref[c]} "
                                 f"in {first.label}")


def _kind_of(col: pd.Series) -> str:
    if col.isna().all():
        return "empty"
    if pd.api.types.is_bool_dtype(col.dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(col.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return "datetime"
    return "text"
