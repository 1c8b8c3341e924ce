"""Lineage of a dataset: who made its records, at what depth — one summary, one set of keys.

The pipeline's ``summary.json``, ``synthloop provenance show``, the manifest's disclosure and
the collapse lab's per-generation training mix all report :func:`lineage_summary`. It streams:
give it any iterable of tables (one Parquet shard at a time) and it holds only counters.

Keys (always present)::

    records                   number of records
    real, synthetic           records of each origin
    synthetic_share           synthetic / records (0.0 on an empty dataset), in [0, 1]
    generators                {model name: records}, most frequent first
    generator_weights_sha256  {model name: weights sha256}
    depth_histogram           {generation (as a string): records}, by generation
    watermarks                {"scheme:key_id": records} (empty when no column or no marks)

and, when the data has the column: ``digital_source_types`` ({IPTC URI: records}) and
``taxonomy_paths`` ({path: records}, sorted). A pipeline run adds what it dropped
(:meth:`synthloop.pipeline.folder.RunFolder.lineage`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from synthloop.errors import InputError
from synthloop.records.io import read_parquet_columns
from synthloop.records.schema import Generator

#: Columns every record carries (see :mod:`synthloop.records.schema`).
LINEAGE_COLUMNS = ("origin", "generation", "generator")
#: Columns counted when present.
OPTIONAL_LINEAGE_COLUMNS = ("watermark", "digital_source_type", "taxonomy_path")


def _counts(column: pa.ChunkedArray | pa.Array) -> Iterable[tuple[object, int]]:
    for d in pc.value_counts(column).to_pylist():
        yield d["values"], int(d["counts"])


def lineage_summary(data: pa.Table | Iterable[pa.Table]) -> dict:
    """Summarise the lineage of ``data`` (one table, or a stream of tables with the
    provenance columns); see the module docstring for the keys. Memory: counters only."""
    tables = [data] if isinstance(data, pa.Table) else data
    n = 0
    origins: Counter = Counter()
    depth: Counter = Counter()
    gens: Counter = Counter()
    weights: dict[str, str] = {}
    marks: Counter = Counter()
    sources: Counter | None = None
    paths: Counter | None = None
    for t in tables:
        missing = [c for c in LINEAGE_COLUMNS if c not in t.column_names]
        if missing:
            raise InputError(f"missing provenance column '{missing[0]}'", fields=(missing[0],))
        n += t.num_rows
        for value, k in _counts(t["origin"]):
            origins[value] += k
        for value, k in _counts(t["generation"]):
            depth[int(value)] += k
        for value, k in _counts(t["generator"]):
            if value:
                g = Generator.from_json(value)
                gens[g.model] += k
                weights[g.model] = g.weights_sha256
        if "watermark" in t.column_names:
            for value, k in _counts(t["watermark"]):
                if value:
                    w = json.loads(value)
                    marks[f"{w['scheme']}:{w['key_id']}"] += k
        if "digital_source_type" in t.column_names:
            sources = sources if sources is not None else Counter()
            for value, k in _counts(t["digital_source_type"]):
                if value:
                    sources[value] += k
        if "taxonomy_path" in t.column_names:
            paths = paths if paths is not None else Counter()
            for value, k in _counts(t["taxonomy_path"]):
                if value:
                    paths[value] += k
    out: dict = {
        "records": n, "real": origins.get("real", 0), "synthetic": origins.get("synthetic", 0),
        "synthetic_share": origins.get("synthetic", 0) / n if n else 0.0,
        "generators": dict(gens.most_common()), "generator_weights_sha256": weights,
        "depth_histogram": {str(k): v for k, v in sorted(depth.items())},
        "watermarks": dict(marks.most_common()),
    }
    if sources is not None:
        out["digital_source_types"] = dict(sources.most_common())
    if paths is not None:
        out["taxonomy_paths"] = dict(sorted(paths.items()))
    return out


def read_lineage_columns(files: Iterable[Path]) -> Iterable[pa.Table]:
    """The provenance columns of each Parquet file, one table at a time (for
    :func:`lineage_summary`); a file without them is one error line naming it."""
    for f in files:
        yield read_parquet_columns(f, required=LINEAGE_COLUMNS,
                                   optional=OPTIONAL_LINEAGE_COLUMNS)
