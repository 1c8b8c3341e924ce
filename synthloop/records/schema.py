"""The record: content plus provenance, as an Arrow table.

Every dataset synthloop reads or writes has the same provenance columns, so that any record can
be traced to where it came from: real data, or which model (weights hash, decoding parameters,
seed) wrote it from which parents, in which run.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from synthloop.errors import InputError

SCHEMA_VERSION = 1
ORIGINS = ("real", "synthetic")
#: IPTC digital source type of model-generated content (machine-readable marking of every
#: synthetic record, EU AI Act Art. 50(2)).
DIGITAL_SOURCE_SYNTHETIC = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

#: Provenance columns, in order; content columns come first in a table.
PROVENANCE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("id", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),
    pa.field("generation", pa.int32(), nullable=False),
    pa.field("generator", pa.string(), nullable=True),
    pa.field("parents", pa.list_(pa.string()), nullable=False),
    pa.field("run_id", pa.string(), nullable=True),
    pa.field("created_at", pa.string(), nullable=False),
    pa.field("schema_version", pa.int32(), nullable=False),
)
PROVENANCE_COLUMNS: tuple[str, ...] = tuple(f.name for f in PROVENANCE_FIELDS)
#: Marking columns synthetic records may carry besides provenance (not content).
MARKING_COLUMNS: tuple[str, ...] = ("digital_source_type", "watermark")


def content(table: pa.Table) -> pa.Table:
    """The content columns of a record table (provenance and marking columns removed)."""
    meta = set(PROVENANCE_COLUMNS) | set(MARKING_COLUMNS)
    return table.select([c for c in table.column_names if c not in meta])


def normalise_content(content: str | Mapping[str, Any]) -> str:
    """Canonical text of a record's content: NFC text, or sorted-key JSON of a table row."""
    if isinstance(content, str):
        return unicodedata.normalize("NFC", content)
    canon = {k: (unicodedata.normalize("NFC", v) if isinstance(v, str) else v)
             for k, v in content.items()}
    return json.dumps(canon, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)


def record_id(content: str | Mapping[str, Any]) -> str:
    """sha256 hex digest of the NFC-normalised content (64 hex characters).

    Identical content gets the same id whatever its origin, so duplicates across real and
    synthetic data are visible by id alone.
    """
    return hashlib.sha256(normalise_content(content).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Generator:
    """Who wrote a synthetic record: model id, weights hash, decoding parameters, seed, and
    the hash of the prompt template it was asked with."""

    model: str
    weights_sha256: str
    decoding: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    template_sha256: str | None = None

    def to_json(self) -> str:
        d = {"model": self.model, "weights_sha256": self.weights_sha256,
             "decoding": dict(self.decoding), "seed": self.seed}
        if self.template_sha256:
            d["template_sha256"] = self.template_sha256
        return json.dumps(d, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Generator:
        d = json.loads(text)
        return Generator(d["model"], d["weights_sha256"], d.get("decoding", {}), d.get("seed"),
                         d.get("template_sha256"))


def utc_now() -> str:
    """Current UTC time, ISO-8601 with seconds.

    Honours ``SOURCE_DATE_EPOCH`` (the reproducible-builds convention), so reruns with the same
    seed can produce byte-identical datasets.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return when.isoformat(timespec="seconds")


def text_records(texts: Sequence[str], *, origin: str = "real", generation: int = 0,
                 generator: Generator | None = None,
                 parents: Sequence[Sequence[str]] | None = None, run_id: str | None = None,
                 created_at: str | None = None,
                 extra: Mapping[str, Sequence[Any]] | None = None) -> pa.Table:
    """Build a text record table: a ``text`` column, any ``extra`` columns, then provenance.

    Args:
        texts: record contents.
        origin: ``"real"`` or ``"synthetic"``.
        generation: 0 for real data; k ≥ 1 for data written by the model of generation k−1
            (the number of model hops between the record and real data).
        generator: the model that wrote the records (required for synthetic records).
        parents: per record, the ids it was derived from (e.g. the real prompt's record).
        run_id: the run that made the records.
        created_at: timestamp to stamp (default now); pass one for byte-identical reruns.
    """
    n = len(texts)
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    if origin == "synthetic" and generator is None:
        raise ValueError("synthetic records need a generator")
    if origin == "real" and generation != 0:
        raise ValueError("real records have generation 0")
    if parents is not None and len(parents) != n:
        raise ValueError(f"{len(parents)} parent lists for {n} texts")
    stamp = created_at or utc_now()
    cols: dict[str, pa.Array] = {"text": pa.array(list(texts), pa.string())}
    for name, values in (extra or {}).items():
        cols[name] = pa.array(list(values))
    gen_json = generator.to_json() if generator else None
    cols.update({
        "id": pa.array([record_id(t) for t in texts], pa.string()),
        "origin": pa.array([origin] * n, pa.string()),
        "generation": pa.array([generation] * n, pa.int32()),
        "generator": pa.array([gen_json] * n, pa.string()),
        "parents": pa.array([list(p) for p in parents] if parents else [[] for _ in range(n)],
                            pa.list_(pa.string())),
        "run_id": pa.array([run_id] * n, pa.string()),
        "created_at": pa.array([stamp] * n, pa.string()),
        "schema_version": pa.array([SCHEMA_VERSION] * n, pa.int32()),
    })
    if origin == "synthetic":
        cols["digital_source_type"] = pa.array([DIGITAL_SOURCE_SYNTHETIC] * n, pa.string())
    return pa.table(cols)


def with_provenance(table: pa.Table, *, content_columns: Iterable[str] | None = None,
                    run_id: str | None = None, created_at: str | None = None) -> pa.Table:
    """Add real-data provenance to a table of content columns.

    A table that has every provenance column is returned as it is. Otherwise every column is
    the user's: a user's ``id`` whose values are unique and non-null stays the record id (as
    a string); any other column named like a provenance column (an ``id`` with repeats or
    nulls, an ``origin``, ``created_at``, ...) is content and is renamed ``user_<name>``. The id
    of a row without its own is the hash of its ``text`` column if there is one, else of the
    row's content columns as canonical JSON.
    """
    if all(c in table.column_names for c in PROVENANCE_COLUMNS):
        return table
    own_ids = None
    if "id" in table.column_names:
        col = table.column("id")
        values = col.to_pylist()
        if col.null_count == 0 and len(set(map(str, values))) == len(values):
            own_ids = pa.array([str(v) for v in values], pa.string())
            table = table.drop_columns(["id"])
    clash = [c for c in table.column_names if c in PROVENANCE_COLUMNS]
    if clash:
        table = table.rename_columns([f"user_{c}" if c in clash else c
                                      for c in table.column_names])
    content = list(content_columns or [c for c in table.column_names
                                       if c not in PROVENANCE_COLUMNS])
    n = table.num_rows
    if own_ids is not None:
        ids = own_ids
    elif "text" in content:  # a non-string text (the reader reports it) hashes as a row
        ids = [record_id(t if isinstance(t, str) else {"text": t})
               for t in table.column("text").to_pylist()]
    else:
        rows = table.select(content).to_pylist()
        ids = [record_id(r) for r in rows]
    stamp = created_at or utc_now()
    defaults = {
        "id": pa.array(ids, pa.string()),
        "origin": pa.array(["real"] * n, pa.string()),
        "generation": pa.array([0] * n, pa.int32()),
        "generator": pa.array([None] * n, pa.string()),
        "parents": pa.array([[] for _ in range(n)], pa.list_(pa.string())),
        "run_id": pa.array([run_id] * n, pa.string()),
        "created_at": pa.array([stamp] * n, pa.string()),
        "schema_version": pa.array([SCHEMA_VERSION] * n, pa.int32()),
    }
    out = table
    for f in PROVENANCE_FIELDS:
        out = out.append_column(f, defaults[f.name])
    return out


def validate_provenance(table: pa.Table, source: str = "<table>") -> None:
    """Raise :class:`~synthloop.errors.InputError` naming the first provenance problem."""
    for f in PROVENANCE_FIELDS:
        if f.name not in table.column_names:
            raise InputError(f"{source}: missing provenance column '{f.name}'")
        col_type = table.schema.field(f.name).type
        if col_type != f.type and not (pa.types.is_integer(col_type)
                                       and pa.types.is_integer(f.type)):
            raise InputError(f"{source}: column '{f.name}' has type {col_type}, "
                             f"expected {f.type}")
        if not f.nullable and table.column(f.name).null_count:
            row = table.column(f.name).to_pylist().index(None)
            raise InputError(f"{source}: row {row}: field '{f.name}' is null")
    origins = table.column("origin").to_pylist()
    for i, o in enumerate(origins):
        if o not in ORIGINS:
            raise InputError(f"{source}: row {i}: field 'origin' is {o!r}, "
                             f"expected one of {', '.join(ORIGINS)}")


def conform_provenance(table: pa.Table, source: str = "<table>") -> pa.Table:
    """Cast provenance columns to their canonical types (JSON and CSV readers infer
    ``null`` for an all-null column and ``int64`` for integers), then validate."""
    for f in PROVENANCE_FIELDS:
        if f.name not in table.column_names:
            continue
        col = table.column(f.name)
        if col.type == f.type:
            continue
        try:
            cast = col.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise InputError(f"{source}: column '{f.name}' has type {col.type}, "
                             f"expected {f.type}") from None
        table = table.set_column(table.column_names.index(f.name), f, cast)
    validate_provenance(table, source)
    return table


def synthetic_records(content: pa.Table, *, generator: Generator,
                      parents: Sequence[Sequence[str]], generations: Sequence[int],
                      run_id: str | None, created_at: str) -> pa.Table:
    """Content columns plus synthetic provenance, one generation per row.

    The id is the hash of the ``text`` column when there is one, else of the row's content as
    canonical JSON (a table row).
    """
    n = content.num_rows
    if len(parents) != n or len(generations) != n:
        raise ValueError(f"{n} rows, {len(parents)} parent lists, {len(generations)} generations")
    if "text" in content.column_names:
        ids = [record_id(t or "") for t in content.column("text").to_pylist()]
    else:
        ids = [record_id(r) for r in content.to_pylist()]
    cols = {name: content.column(name) for name in content.column_names}
    cols.update({
        "id": pa.array(ids, pa.string()),
        "origin": pa.array(["synthetic"] * n, pa.string()),
        "generation": pa.array(list(generations), pa.int32()),
        "generator": pa.array([generator.to_json()] * n, pa.string()),
        "parents": pa.array([list(p) for p in parents], pa.list_(pa.string())),
        "run_id": pa.array([run_id] * n, pa.string()),
        "created_at": pa.array([created_at] * n, pa.string()),
        "schema_version": pa.array([SCHEMA_VERSION] * n, pa.int32()),
        "digital_source_type": pa.array([DIGITAL_SOURCE_SYNTHETIC] * n, pa.string()),
    })
    return pa.table(cols)


def concat_records(parts: list[pa.Table]) -> pa.Table:
    """Concatenate record tables keeping every column (missing ones become nulls)."""
    parts = [p for p in parts if p is not None]
    return pa.concat_tables(parts, promote_options="permissive")
