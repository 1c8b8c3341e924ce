"""Linked tables: a tree of tables joined by keys (:class:`RelationalSchema`), read from a
schema YAML (:func:`read_schema`), checked against the data, split by root entity.

Shared by the relational synthesizer (:mod:`synthloop.generate.relational`) and the relational
audit (:mod:`synthloop.audit.relational`).

A schema YAML::

    tables:
      patients: {path: patients.csv, key: subject}
      visits:   {path: visits.csv, parent: patients, foreign_key: subject, order_by: period}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synthloop.errors import ConfigError, InputError
from synthloop.measures.columns import as_datetimes, infer_column_types

#: Column-name prefixes the relational synthesizer keeps for itself (a data column may not
#: start with them).
RESERVED_PREFIXES = ("__", "prev.")
_SPEC_KEYS = ("path", "key", "parent", "foreign_key", "order_by", "column_types")


@dataclass(frozen=True)
class TableSpec:
    """One table of a :class:`RelationalSchema`.

    Attributes:
        name: the table's name (unique in the schema).
        key: its primary-key column (unique, non-null); required when it has children.
        parent: the table its rows belong to (None: a root table).
        foreign_key: the column holding the parent row's key (exactly when ``parent`` is set).
        order_by: a numeric or datetime column ordering the rows of one parent: makes the
            table sequential (needs ``parent``).
        path: where the table is read from (CSV, Parquet, JSONL), for :func:`read_schema`.
        column_types: sdtype overrides for this table's columns.
    """

    name: str
    key: str | None = None
    parent: str | None = None
    foreign_key: str | None = None
    order_by: str | None = None
    path: str | None = None
    column_types: Mapping[str, str] = field(default_factory=dict)

    @property
    def sequential(self) -> bool:
        return self.order_by is not None

    @property
    def link_columns(self) -> tuple[str, ...]:
        """Key, foreign key and order columns: written by the synthesizer, not modelled."""
        return tuple(c for c in (self.key, self.foreign_key, self.order_by) if c)


class RelationalSchema:
    """A tree of tables linked by keys (see the module docstring); checked on construction:
    unknown parents, cycles, a foreign key without a parent (or the reverse), a parent with no
    key, an order column on a root table are one :class:`ConfigError` each."""

    def __init__(self, tables: Sequence[TableSpec]) -> None:
        if not tables:
            raise ConfigError("schema: no tables", fields=("tables",))
        names = [t.name for t in tables]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ConfigError(f"schema: table '{dup}' is defined twice", fields=("tables",))
        self.tables = {t.name: t for t in tables}
        for t in tables:
            where = f"schema: table '{t.name}'"
            if t.parent is not None and t.parent not in self.tables:
                raise ConfigError(f"{where}: parent '{t.parent}' is not a table of the schema",
                                  fields=("parent",))
            if (t.parent is None) != (t.foreign_key is None):
                raise ConfigError(f"{where}: give parent and foreign_key together",
                                  fields=("parent", "foreign_key"))
            if t.order_by is not None and t.parent is None:
                raise ConfigError(f"{where}: order_by needs a parent (a sequence belongs to an "
                                  f"entity)", fields=("order_by",))
            cols = [c for c in t.link_columns]
            if len(set(cols)) < len(cols):
                raise ConfigError(f"{where}: key, foreign_key and order_by must be different "
                                  f"columns", fields=("key", "foreign_key", "order_by"))
        for t in tables:
            seen, cur = [t.name], t
            while cur.parent is not None:
                if cur.parent in seen:
                    cycle = " → ".join(seen[seen.index(cur.parent):] + [cur.parent])
                    raise ConfigError(f"schema: cyclic links {cycle}", fields=("parent",))
                seen.append(cur.parent)
                cur = self.tables[cur.parent]
        for t in tables:
            if t.parent is not None and self.tables[t.parent].key is None:
                raise ConfigError(f"schema: table '{t.parent}' has children ('{t.name}') but no "
                                  f"key", fields=("key",))

    # -- structure ----------------------------------------------------------------------------
    def children(self, name: str) -> list[TableSpec]:
        return [t for t in self.tables.values() if t.parent == name]

    @property
    def order(self) -> list[str]:
        """Table names, every parent before its children (roots in schema order)."""
        out: list[str] = []

        def visit(name: str) -> None:
            out.append(name)
            for c in self.children(name):
                visit(c.name)

        for t in self.tables.values():
            if t.parent is None:
                visit(t.name)
        return out

    def depth(self, name: str) -> int:
        """0 for a root table, 1 for its children, ..."""
        d, t = 0, self.tables[name]
        while t.parent is not None:
            d, t = d + 1, self.tables[t.parent]
        return d

    def to_dict(self) -> dict:
        """The schema as :meth:`from_dict` reads it (paths and column types included)."""
        out = {}
        for t in self.tables.values():
            d = {k: getattr(t, k) for k in _SPEC_KEYS if getattr(t, k)}
            if "column_types" in d:
                d["column_types"] = dict(d["column_types"])
            out[t.name] = d
        return {"tables": out}

    @classmethod
    def from_dict(cls, d: object, where: str = "schema") -> RelationalSchema:
        """``{"tables": {name: {path, key, parent, foreign_key, order_by, column_types}}}``."""
        if not isinstance(d, dict) or not isinstance(d.get("tables"), dict) or not d["tables"]:
            raise ConfigError(f"{where}: expected a mapping 'tables: {{name: {{...}}}}'",
                              fields=("tables",))
        extra = sorted(set(d) - {"tables"})
        if extra:
            raise ConfigError(f"{where}: unknown key '{extra[0]}' (only 'tables')",
                              fields=(extra[0],))
        specs = []
        for name, spec in d["tables"].items():
            spec = spec or {}
            if not isinstance(spec, dict):
                raise ConfigError(f"{where}: table '{name}' must be a mapping", fields=(name,))
            bad = sorted(set(spec) - set(_SPEC_KEYS))
            if bad:
                raise ConfigError(f"{where}: table '{name}': unknown field '{bad[0]}' (one of "
                                  f"{', '.join(_SPEC_KEYS)})", fields=(bad[0],))
            for k in _SPEC_KEYS[:-1]:
                if k in spec and not isinstance(spec[k], str):
                    raise ConfigError(f"{where}: table '{name}': {k} must be a string",
                                      fields=(k,))
            types = spec.get("column_types", {})
            if not isinstance(types, dict):
                raise ConfigError(f"{where}: table '{name}': column_types must be a mapping",
                                  fields=("column_types",))
            specs.append(TableSpec(name=str(name), **{k: spec[k] for k in _SPEC_KEYS[:-1]
                                                      if k in spec}, column_types=types))
        return cls(specs)

    # -- data checks --------------------------------------------------------------------------
    def check(self, frames: Mapping[str, pd.DataFrame]) -> None:
        """One :class:`InputError` naming the table, column and row of the first thing the
        data gets wrong: a missing table, an unknown key/foreign-key/order column, a duplicate
        or empty key, a child row whose parent is missing, an order column that is neither
        numbers nor dates, a column name the synthesizer reserves."""
        missing = [n for n in self.tables if n not in frames]
        if missing:
            raise InputError(f"table '{missing[0]}': no data given")
        extra = sorted(set(frames) - set(self.tables))
        if extra:
            raise InputError(f"table '{extra[0]}': not in the schema")
        for name, t in self.tables.items():
            df = frames[name]
            if len(df) == 0:
                raise InputError(f"table '{name}': no rows")
            for role in ("key", "foreign_key", "order_by"):
                c = getattr(t, role)
                if c is not None and c not in df.columns:
                    raise InputError(f"table '{name}': {role} column '{c}' is not a column "
                                     f"(columns: {', '.join(map(str, df.columns[:12]))})")
            reserved = [c for c in df.columns if str(c).startswith(RESERVED_PREFIXES)]
            if reserved:
                raise InputError(f"table '{name}': column '{reserved[0]}' uses a reserved name "
                                 f"(names starting {' or '.join(RESERVED_PREFIXES)} are the "
                                 f"synthesizer's)")
            for c in t.column_types:
                if c not in df.columns:
                    raise InputError(f"table '{name}': column_types names no column '{c}'")
            if t.key is not None:
                k = df[t.key]
                if k.isna().any():
                    row = int(np.flatnonzero(k.isna().to_numpy())[0])
                    raise InputError(f"table '{name}': row {row}: key '{t.key}' is empty")
                dup = k.duplicated()
                if dup.any():
                    row = int(np.flatnonzero(dup.to_numpy())[0])
                    raise InputError(f"table '{name}': row {row}: key '{t.key}' value "
                                     f"{_py(k.iloc[row])!r} is not unique")
            if t.order_by is not None:
                o = df[t.order_by]
                types = infer_column_types(df[[t.order_by]], {
                    c: v for c, v in t.column_types.items() if c == t.order_by} or None)
                if types[t.order_by] not in ("numerical", "datetime"):
                    raise InputError(f"table '{name}': order_by column '{t.order_by}' must hold "
                                     f"numbers or dates (got {o.dtype})")
                as_datetimes({f"table '{name}'": df[[t.order_by]]}, types)
                if o.isna().any():
                    row = int(np.flatnonzero(o.isna().to_numpy())[0])
                    raise InputError(f"table '{name}': row {row}: order_by '{t.order_by}' is "
                                     f"empty")
        for name, t in self.tables.items():
            if t.parent is None:
                continue
            p = self.tables[t.parent]
            fk, keys = frames[name][t.foreign_key], frames[t.parent][p.key]
            orphan = ~fk.isin(keys) | fk.isna()
            if orphan.any():
                row = int(np.flatnonzero(orphan.to_numpy())[0])
                raise InputError(f"table '{name}': row {row}: foreign key '{t.foreign_key}' = "
                                 f"{_py(fk.iloc[row])!r} has no parent row in '{t.parent}' "
                                 f"(key '{p.key}')")

    def split(self, frames: Mapping[str, pd.DataFrame], fraction: float, seed: int
              ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
        """Seeded split into (train, holdout) by root entity: ``fraction`` of each root
        table's rows and everything below them go to the holdout, so no entity is split."""
        if not 0 < fraction < 1:
            raise ConfigError(f"holdout fraction must be in (0, 1), got {fraction}",
                              fields=("fraction",))
        rng = np.random.default_rng(seed)
        train: dict[str, pd.DataFrame] = {}
        hold: dict[str, pd.DataFrame] = {}
        for name in self.order:
            t, df = self.tables[name], frames[name]
            if t.parent is None:
                n_hold = max(1, int(round(len(df) * fraction)))
                if n_hold >= len(df):
                    raise InputError(f"table '{name}': {len(df)} rows are too few to split off "
                                     f"a holdout")
                pick = np.zeros(len(df), dtype=bool)
                pick[rng.permutation(len(df))[:n_hold]] = True
            else:
                p = self.tables[t.parent]
                pick = df[t.foreign_key].isin(hold[t.parent][p.key]).to_numpy()
            train[name] = df[~pick].reset_index(drop=True)
            hold[name] = df[pick].reset_index(drop=True)
        return train, hold


def event_times(s: pd.Series, is_date: bool) -> np.ndarray:
    """An order column as float numbers: seconds since the epoch for dates, else the values."""
    return (s.astype("datetime64[ns]").astype("int64").to_numpy(float) / 1e9 if is_date
            else pd.to_numeric(s).to_numpy(float))


def event_gaps(times: np.ndarray, entity: np.ndarray) -> pd.Series:
    """Time since the same entity's previous row (rows in time order within each entity; NaN
    on an entity's first row). Shared by the synthesizer (what it learns) and the audit (what
    it compares)."""
    return pd.Series(times).groupby(entity, sort=False).diff()


def _py(v: object) -> object:
    """A numpy scalar as the Python value it holds (so messages read ``9``, not
    ``np.int64(9)``)."""
    return v.item() if isinstance(v, np.generic) else v


def read_schema(path: str | Path) -> tuple[RelationalSchema, dict[str, pd.DataFrame]]:
    """A schema YAML and its tables (each ``path`` relative to the YAML), checked."""
    from synthloop.records.io import read_table_file, read_yaml

    path = Path(path)
    schema = RelationalSchema.from_dict(read_yaml(path, ConfigError), str(path))
    frames = {}
    for name, t in schema.tables.items():
        if not t.path:
            raise ConfigError(f"{path}: table '{name}' has no path", fields=("path",))
        frames[name] = read_table_file(path.parent / t.path).to_pandas()
    schema.check(frames)
    return schema, frames
