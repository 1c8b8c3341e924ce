"""Linked and sequential tables: a tree of tables joined by keys, synthesized top-down.

A :class:`~synthloop.records.relational.RelationalSchema` names the tables, each table's
primary ``key``, its ``parent`` table and the ``foreign_key`` column that points at the
parent's key (one parent per table: a tree, any depth, several roots allowed), and for
*sequential* tables (events of an entity: account → transactions, patient → visits) the
``order_by`` column that orders an entity's rows (numbers or datetimes).

:class:`RelationalSynthesizer` fits one table synthesizer per table, parents first:

- every table learns, besides its own columns, how many rows each of its rows has in each
  child table (``__n_<child>``): the child-count distribution and its dependence on the
  parent's attributes;
- a child table's model is conditioned on its parent row (the parent's attributes, prefixed
  ``<parent>.``, and the parent's count of such children), so children follow their parent;
- a sequential table is modelled one step at a time: each event sees its position in the
  sequence (``__pos``), the previous event's values (``prev.<column>``) and the time since the
  previous event (``__gap``; the first event draws its absolute time, ``__start``), so sequence
  lengths, order, time gaps and within-entity correlation are learned and kept.

Sampling draws the roots, then for each parent the number of children its model drew, then the
children given their parent (sequences event by event), and gives every row a fresh key, so
every foreign key points at an existing parent by construction. Root tables use
:func:`~synthloop.generate.tables.table_synthesizer` (``auto``: the copula under 100 rows);
child tables always use the autoregressive model, the one that can be conditioned.

Memory: every table is held in memory (fit and sample); the training frame of a sequential
table is about twice as wide as the table (its previous-event columns).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from synthloop.errors import ConfigError, InputError
from synthloop.generate.autoregressive import AutoregressiveTable
from synthloop.generate.tables import resolve_table_model, table_synthesizer
from synthloop.measures.columns import as_datetimes, infer_column_types
from synthloop.progress import NullProgress, Progress
from synthloop.records.relational import (
    RESERVED_PREFIXES,
    RelationalSchema,
    TableSpec,
    event_gaps,
    event_times,
)

POS, GAP, START = "__pos", "__gap", "__start"
PREV = RESERVED_PREFIXES[1]


def count_column(child: str) -> str:
    """The column of a parent's training frame holding its number of ``child`` rows."""
    return f"__n_{child}"


# -- the synthesizer ------------------------------------------------------------------------

def _attributes(t: TableSpec, df: pd.DataFrame, types: dict[str, str]) -> list[str]:
    """The columns a table's model learns (not its link columns, not id-typed ones)."""
    return [c for c in df.columns if c not in t.link_columns and types[c] != "id"]


@dataclass
class _Fitted:
    spec: TableSpec
    types: dict[str, str]           # the real table's column types
    attrs: list[str]                # modelled own columns
    context: list[str]              # parent.<attr> columns
    columns: list[str]              # the training frame's columns, in order
    model: object                   # AutoregressiveTable or a copula/SDV synthesizer
    model_name: str
    dtypes: dict
    rows: int
    key_kind: str = "none"          # "int" or "str" or "none"
    time_is_date: bool = False
    time_pool: dict = None          # sequential: real start times and gaps (a last resort)


class RelationalSynthesizer:
    """Synthesize every table of a :class:`RelationalSchema` (see the module docstring).

    Args:
        schema: the tables and their links.
        model: the root tables' synthesizer (:data:`~synthloop.generate.tables.TABLE_MODELS`;
            ``auto`` picks by size); child tables always use the autoregressive model.
        options: :class:`~synthloop.generate.autoregressive.AutoregressiveTable` parameters
            for every autoregressive model (``max_seconds``, ``max_epochs``...).
    """

    def __init__(self, schema: RelationalSchema, *, model: str = "auto",
                 options: Mapping[str, object] | None = None) -> None:
        resolve_table_model(model, 1000)
        if (options or {}).get("epsilon") is not None:
            raise ConfigError("differential privacy (epsilon) is for single tables: linked "
                              "tables need accounting per entity (all its rows), not yet built",
                              fields=("epsilon",))
        self.schema = schema
        self.model = model
        self.options = dict(options or {})
        self._fitted: dict[str, _Fitted] = {}

    # -- training frames ----------------------------------------------------------------------
    def _context(self, name: str, frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame | None:
        """Per row of ``name``: its parent's attributes (prefixed) and sibling count."""
        t = self.schema.tables[name]
        if t.parent is None:
            return None
        p, pf = self.schema.tables[t.parent], self._fitted[t.parent]
        parent = frames[t.parent]
        cols = {f"{t.parent}.{c}": parent[c].to_numpy() for c in pf.attrs}
        counts = frames[name][t.foreign_key].value_counts()
        cols[f"{t.parent}.{count_column(name)}"] = \
            parent[p.key].map(counts).fillna(0).astype("int64").to_numpy()
        ctx = pd.DataFrame(cols, index=parent[p.key].to_numpy())
        return ctx.loc[frames[name][t.foreign_key].to_numpy()].reset_index(drop=True)

    def _training_frame(self, name: str, frames: Mapping[str, pd.DataFrame],
                        attrs: list[str], types: dict[str, str]) -> pd.DataFrame:
        t = self.schema.tables[name]
        df = frames[name]
        if t.sequential:
            df = as_datetimes({name: df}, {t.order_by: types[t.order_by]})[name]
            df = df.sort_values([t.foreign_key, t.order_by], kind="stable").reset_index(drop=True)
        parts = []
        ctx = self._context(name, {**frames, name: df})
        if ctx is not None:
            parts.append(ctx)
        if t.sequential:
            g = df.groupby(t.foreign_key, sort=False)
            pos = g.cumcount()
            seq = {POS: pos.to_numpy()}
            for c in attrs:
                seq[PREV + c] = g[c].shift(1).to_numpy()
            is_date = types[t.order_by] == "datetime"
            gap = event_gaps(event_times(df[t.order_by], is_date), df[t.foreign_key].to_numpy())
            seq[START] = df[t.order_by].where(pos == 0).to_numpy()
            seq[GAP] = gap.to_numpy()
            parts.append(pd.DataFrame(seq))
        parts.append(df[attrs].reset_index(drop=True))
        counts = {}
        for child in self.schema.children(name):
            n = frames[child.name][child.foreign_key].value_counts()
            counts[count_column(child.name)] = \
                df[t.key].map(n).fillna(0).astype("int64").to_numpy()
        if counts:
            parts.append(pd.DataFrame(counts))
        return pd.concat(parts, axis=1)

    def _training_types(self, name: str, frame: pd.DataFrame, types: dict[str, str]
                        ) -> dict[str, str]:
        t = self.schema.tables[name]
        out = {}
        for c in frame.columns:
            if c.startswith("__"):
                out[c] = types[t.order_by] if c == START else "numerical"
            elif c.startswith(PREV):
                out[c] = types[c[len(PREV):]]
            elif t.parent is not None and c.startswith(f"{t.parent}."):
                src = c[len(t.parent) + 1:]
                out[c] = "numerical" if src.startswith("__") else \
                    self._fitted[t.parent].types[src]
            else:
                out[c] = types[c]
        return out

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, frames: Mapping[str, pd.DataFrame], *, seed: int = 0,
            progress: Progress | None = None) -> RelationalSynthesizer:
        """Fit every table, parents first (``frames``: ``{table: DataFrame}``, checked with
        :meth:`RelationalSchema.check`)."""
        progress = progress or NullProgress()
        self.schema.check(frames)
        self._fitted = {}
        for i, name in enumerate(self.schema.order):
            t, df = self.schema.tables[name], frames[name]
            types = infer_column_types(df, dict(t.column_types) or None)
            attrs = _attributes(t, df, types)
            frame = self._training_frame(name, frames, attrs, types)
            ttypes = self._training_types(name, frame, types)
            context = [c for c in frame.columns if t.parent and c.startswith(f"{t.parent}.")]
            if t.parent is None:
                model_name = resolve_table_model(self.model, len(frame))
                try:
                    model = table_synthesizer(self.model, len(frame), column_types=ttypes,
                                              **(self.options if model_name == "autoregressive"
                                                 else {}))
                except TypeError as e:
                    raise ConfigError(f"options: {e}") from None
            else:
                if len(frame) < 10:
                    raise InputError(f"table '{name}': {len(frame)} rows; a child table needs "
                                     f"at least 10 to learn from its parents")
                model_name = "autoregressive"
                try:
                    model = AutoregressiveTable(ttypes, **self.options)
                except TypeError as e:
                    raise ConfigError(f"options: {e}") from None
            progress.log(f"relational: fit '{name}' ({len(frame):,} rows, {model_name}"
                         f"{', sequential' if t.sequential else ''})")
            if model_name == "autoregressive":
                model.fit(frame, seed=seed + i, progress=progress)
            else:
                model.fit(frame, seed=seed + i)
            key_kind = "none"
            if t.key is not None:
                key_kind = "int" if pd.api.types.is_integer_dtype(df[t.key]) else "str"
            pool = ({START: frame[START].dropna().to_numpy(), GAP: frame[GAP].dropna().to_numpy()}
                    if t.sequential else {})
            if t.sequential and not len(pool[GAP]):
                pool[GAP] = np.zeros(1)
            self._fitted[name] = _Fitted(
                spec=t, types=types, attrs=attrs, context=context, columns=list(frame.columns),
                model=model, model_name=model_name, dtypes=dict(df.dtypes), rows=len(df),
                key_kind=key_kind,
                time_is_date=bool(t.sequential and types[t.order_by] == "datetime"),
                time_pool=pool)
        self._columns = {n: list(frames[n].columns) for n in self.schema.tables}
        return self

    def fingerprint(self) -> str:
        """sha256 over every table model's fingerprint and the schema."""
        if not self._fitted:
            raise RuntimeError("fit first")
        h = hashlib.sha256(repr(self.schema.to_dict()).encode())
        for name in self.schema.order:
            h.update(name.encode() + self._fitted[name].model.fingerprint().encode())
        return h.hexdigest()

    def table_info(self, name: str) -> dict:
        """What was fitted for ``name``: model, rows, epochs and held-out loss."""
        f = self._fitted[name]
        info = {"table": name, "model": f.model_name, "rows_fitted": f.rows,
                "parent": f.spec.parent, "sequential": f.spec.sequential,
                "weights_sha256": f.model.fingerprint()}
        if isinstance(f.model, AutoregressiveTable):
            info.update(epochs=f.model.epochs, val_loss=round(f.model.val_loss, 6))
        return info

    # -- sampling -----------------------------------------------------------------------------
    def sample(self, n: int | None = None, *, seed: int = 0,
               progress: Progress | None = None) -> dict[str, pd.DataFrame]:
        """Synthetic tables ``{name: DataFrame}`` with the real columns, in the real order:
        ``n`` rows per root table (default: as many as were fitted) and children as their
        parents' drawn counts say; keys are fresh (1, 2, ... for integer keys, else
        ``<table>-<i>``), foreign keys always point at a sampled parent."""
        if not self._fitted:
            raise RuntimeError("fit first")
        if n is not None and n < 1:
            raise ConfigError(f"n must be ≥ 1, got {n}", fields=("n",))
        progress = progress or NullProgress()
        rng = np.random.default_rng(seed)
        gen: dict[str, pd.DataFrame] = {}  # training-frame columns + the key
        for name in self.schema.order:
            f = self._fitted[name]
            t = f.spec
            s = int(rng.integers(2 ** 31))
            if t.parent is None:
                frame = f.model.sample(n or f.rows, seed=s)
            else:
                ctx, fk = self._sample_context(name, gen)
                frame = (self._sample_sequences(f, ctx, fk, s) if t.sequential
                         else self._sample_rows(f, ctx, fk, s))
            for child in self.schema.children(name):
                c = count_column(child.name)
                frame[c] = np.clip(np.round(pd.to_numeric(frame[c]).fillna(0).to_numpy()),
                                   0, None).astype(np.int64)
            if t.key is not None:
                frame[t.key] = (np.arange(1, len(frame) + 1) if f.key_kind == "int"
                                else [f"{name}-{i}" for i in range(1, len(frame) + 1)])
            gen[name] = frame
            progress.log(f"relational: sampled '{name}' ({len(frame):,} rows)")
        return {name: self._output(name, gen[name]) for name in self.schema.order}

    def _sample_context(self, name: str, gen: dict[str, pd.DataFrame]
                        ) -> tuple[pd.DataFrame, np.ndarray]:
        """One row per child to draw: its parent's context and the parent's key."""
        t = self.schema.tables[name]
        p, pf = self.schema.tables[t.parent], self._fitted[t.parent]
        parent = gen[t.parent]
        counts = parent[count_column(name)].to_numpy()
        ctx = pd.DataFrame({f"{t.parent}.{c}": parent[c].to_numpy() for c in pf.attrs})
        ctx[f"{t.parent}.{count_column(name)}"] = counts
        rep = np.repeat(np.arange(len(parent)), counts)
        return (ctx.iloc[rep].reset_index(drop=True),
                parent[p.key].to_numpy()[rep])

    def _sample_rows(self, f: _Fitted, ctx: pd.DataFrame, fk: np.ndarray, seed: int
                     ) -> pd.DataFrame:
        if not len(ctx):
            return self._empty(f)
        out = f.model.sample(len(ctx), seed=seed, conditions=ctx)
        out[f.spec.foreign_key] = fk
        return out

    def _sample_sequences(self, f: _Fitted, ctx: pd.DataFrame, fk: np.ndarray, seed: int
                          ) -> pd.DataFrame:
        """Event by event: step ``t`` draws the ``t``-th event of every entity with more than
        ``t`` events, given the parent, the position and the previous event."""
        t = f.spec
        if not len(ctx):
            return self._empty(f)
        rng = np.random.default_rng(seed)
        pos = pd.Series(fk).groupby(fk, sort=False).cumcount().to_numpy()
        steps = []
        prev: pd.DataFrame | None = None
        prev_time: np.ndarray | None = None
        order = np.lexsort((pos, np.unique(fk, return_inverse=True)[1]))
        for step in range(int(pos.max()) + 1):
            idx = order[pos[order] == step]  # rows of this step, entity order kept
            cond = ctx.iloc[idx].reset_index(drop=True)
            cond[POS] = step
            for c in f.attrs:
                cond[PREV + c] = (prev[c].to_numpy() if prev is not None
                                  else pd.Series([None] * len(idx), dtype=object))
            out = f.model.sample(len(idx), seed=int(rng.integers(2 ** 31)), conditions=cond)
            out = self._complete_time(f, out, cond, START if step == 0 else GAP, rng)
            if step == 0:
                time = event_times(out[START], f.time_is_date)
            else:
                gap = np.nan_to_num(pd.to_numeric(out[GAP]).to_numpy(float), nan=0.0)
                time = prev_time + np.clip(gap, 0, None)
            out["__time"] = time
            out["__row"] = idx
            steps.append(out)
            prev = out[f.attrs]
            prev_time = time
            if step + 1 <= pos.max():
                nxt = order[pos[order] == step + 1]
                # entities continuing: those with an event at step + 1 (a prefix-closed set)
                keep = np.isin(fk[idx], fk[nxt])
                prev, prev_time = prev[keep].reset_index(drop=True), prev_time[keep]
        out = pd.concat(steps, ignore_index=True).sort_values("__row").reset_index(drop=True)
        out[t.foreign_key] = fk
        time = out.pop("__time").to_numpy()
        if f.time_is_date:
            out[t.order_by] = pd.to_datetime(np.round(time * 1e9).astype("int64"))
        else:
            out[t.order_by] = time
        return out.drop(columns="__row")

    @staticmethod
    def _complete_time(f: _Fitted, out: pd.DataFrame, cond: pd.DataFrame, col: str, rng,
                       tries: int = 20) -> pd.DataFrame:
        """Redraw the rows whose start time (first event) or gap (later ones) came out as the
        column's missing token (it marks the other positions in training); what is still
        missing after ``tries`` rounds takes a real value drawn from the training column."""
        for _ in range(tries):
            bad = np.flatnonzero(out[col].isna().to_numpy())
            if not len(bad):
                return out
            redo = f.model.sample(len(bad), seed=int(rng.integers(2 ** 31)),
                                  conditions=cond.iloc[bad].reset_index(drop=True))
            out.iloc[bad] = redo.to_numpy()
        bad = out[col].isna().to_numpy()
        if bad.any():
            pool = f.time_pool[col]
            out.loc[bad, col] = pool[rng.integers(0, len(pool), int(bad.sum()))]
        return out

    def _empty(self, f: _Fitted) -> pd.DataFrame:
        cols = f.columns + [c for c in (f.spec.foreign_key, f.spec.order_by) if c]
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})

    def _output(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """The real table's columns, in its order, with its dtypes where they fit."""
        f = self._fitted[name]
        t = f.spec
        out = {}
        for c in self._columns[name]:
            if c in frame.columns:
                s = frame[c].reset_index(drop=True)
            else:  # id-typed columns are not modelled: fresh values
                s = pd.Series([f"syn-{name}-{i}" for i in range(len(frame))], dtype=object)
            want = f.dtypes[c]
            if c == t.order_by and not f.time_is_date:
                s = pd.to_numeric(s)
                if pd.api.types.is_integer_dtype(want):
                    s = s.round()
            if pd.api.types.is_integer_dtype(want) and not pd.api.types.is_integer_dtype(s) \
                    and pd.api.types.is_numeric_dtype(s) and not s.isna().any():
                s = s.round().astype(want)
            elif pd.api.types.is_integer_dtype(want) and len(s) == 0:
                s = s.astype(want)
            out[c] = s
        return pd.DataFrame(out)


def synthesize_schema(schema: RelationalSchema, frames: Mapping[str, pd.DataFrame], *,
                      model: str = "auto", n: int | None = None, seed: int = 0,
                      options: Mapping[str, object] | None = None,
                      progress: Progress | None = None
                      ) -> tuple[dict[str, pd.DataFrame], RelationalSynthesizer]:
    """Fit a :class:`RelationalSynthesizer` on ``frames`` and sample it (``n`` root rows,
    default as many as the real ones): ``({table: synthetic DataFrame}, fitted model)``."""
    synth = RelationalSynthesizer(schema, model=model, options=options)
    synth.fit(frames, seed=seed, progress=progress)
    return synth.sample(n, seed=seed + 1, progress=progress), synth


def dataset_fingerprint(df: pd.DataFrame) -> str:
    """``dataset:<sha256>`` of a table's rows (order-free): the parent every synthetic row
    fitted on it names (as ``table-synth`` names the dataset it fitted on)."""
    import pyarrow as pa

    from synthloop.records.schema import record_id

    rows = pa.Table.from_pandas(df, preserve_index=False).to_pylist()
    ids = sorted(record_id(r) for r in rows)
    return "dataset:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()


def tables_as_records(synthetic: Mapping[str, pd.DataFrame], real: Mapping[str, pd.DataFrame],
                      synth: RelationalSynthesizer, *, seed: int, run_id: str | None = None,
                      created_at: str | None = None) -> dict[str, object]:
    """Each synthetic table as synthloop records (``pa.Table``): content columns plus
    provenance; the generator is the table's model (its weights hash, the schema links and the
    fit's figures as parameters), the parent the real table's fingerprint."""
    import pyarrow as pa

    from synthloop.records.schema import Generator, synthetic_records, utc_now

    created_at = created_at or utc_now()
    out = {}
    for name in synth.schema.order:
        info = synth.table_info(name)
        params = {k: v for k, v in info.items() if k not in ("model", "weights_sha256")}
        params["schema_sha256"] = hashlib.sha256(
            repr(synth.schema.to_dict()["tables"][name]).encode()).hexdigest()
        gen = Generator(info["model"], info["weights_sha256"], params, seed)
        df = synthetic[name]
        parent = dataset_fingerprint(real[name])
        n = len(df)
        out[name] = synthetic_records(pa.Table.from_pandas(df, preserve_index=False),
                                      generator=gen, parents=[[parent]] * n,
                                      generations=[1] * n, run_id=run_id,
                                      created_at=created_at)
    return out


def write_tables(schema: RelationalSchema, frames: Mapping[str, pd.DataFrame],
                 out: str | Path, *, model: str = "auto", n: int | None = None, seed: int = 0,
                 options: Mapping[str, object] | None = None,
                 progress: Progress | None = None) -> dict[str, Path]:
    """Synthesize linked tables (:func:`synthesize_schema`) and write ``out/<table>.parquet``
    (synthloop records) plus ``out/schema.yaml`` (the same links over the synthetic files, so
    that the folder can be audited or synthesized like the real one). The folder is written
    whole or not at all (a temporary folder renamed into place); a rerun with the same seed
    writes the same tables. Returns ``{table: path}``."""
    import shutil

    import yaml

    from synthloop.records.io import write_parquet, write_text_atomic

    synthetic, synth = synthesize_schema(schema, frames, model=model, n=n, seed=seed,
                                         options=options, progress=progress)
    records = tables_as_records(synthetic, frames, synth, seed=seed,
                                run_id=f"generate-schema-seed{seed}")
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    paths = {}
    for name, table in records.items():
        write_parquet(table, tmp / f"{name}.parquet")
        paths[name] = out / f"{name}.parquet"
    links = schema.to_dict()
    for name, spec in links["tables"].items():
        spec["path"] = f"{name}.parquet"
    write_text_atomic("# synthetic tables written by synthloop\n" +
                      yaml.safe_dump(links, sort_keys=False), tmp / "schema.yaml")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return paths


def generate_tables(schema_path: str | Path, out: str | Path, *, model: str = "auto",
                    n: int | None = None, seed: int = 0,
                    options: Mapping[str, object] | None = None,
                    progress: Progress | None = None) -> dict[str, Path]:
    """``synthloop generate --schema``: read a schema YAML and its tables
    (:func:`~synthloop.records.relational.read_schema`), then :func:`write_tables`."""
    from synthloop.records.relational import read_schema

    schema, frames = read_schema(schema_path)
    return write_tables(schema, frames, out, model=model, n=n, seed=seed, options=options,
                        progress=progress)
