"""Tabular synthesis: a Gaussian copula of our own, an optional SDV adapter, and the step that
drops rows too close to real ones (the steps that generate rows: :mod:`synthloop.generate.tables`).

The copula (Nelsen 2006; as in SDV's GaussianCopulaSynthesizer) maps every column to a standard
normal score through its marginal, estimates the correlation of the scores, samples new scores
and maps them back:

- numerical / datetime columns: the empirical marginal (mid-ranks in, linear quantile
  interpolation out), so samples stay inside the real range; integer columns stay integers;
- categorical / boolean columns: each category owns an interval of [0, 1] as wide as its
  frequency (a value enters at a seeded uniform point inside its interval);
- missing values: a column with missing values gets an extra missingness dimension in the
  copula, so missingness keeps its correlation with other columns;
- ``id`` columns (unique per row) are not modelled; samples get fresh ids.

Constraints are simple comparisons (``"amount >= 0"``, ``"start <= end"``) enforced by
rejection sampling.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field
from scipy.special import ndtr, ndtri  # the standard normal's cdf and inverse (light)

from synthloop.errors import ConfigError, InputError
from synthloop.measures.columns import as_datetimes, infer_column_types
from synthloop.pipeline.step import Step, StepContext, StepOutput, check_real_path, register, split
from synthloop.records.io import read_records
from synthloop.records.schema import content

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``left op right`` where right is a column or a number."""

    left: str
    op: str
    right: str | float

    @classmethod
    def parse(cls, text: str, columns: list[str]) -> Constraint:
        m = _CONSTRAINT_RE.match(text)
        if not m:
            raise ConfigError(f"constraint '{text}': expected 'COLUMN OP COLUMN|NUMBER' with OP "
                              f"one of {', '.join(_OPS)}")
        left, op, right = m.groups()
        if left not in columns:
            raise ConfigError(f"constraint '{text}': no column '{left}'")
        try:
            return cls(left, op, float(right))
        except ValueError:
            if right not in columns:
                raise ConfigError(f"constraint '{text}': no column '{right}'") from None
            return cls(left, op, right)

    def holds(self, df: pd.DataFrame) -> np.ndarray:
        """True where the constraint holds or a side is missing."""
        a = df[self.left]
        b = df[self.right] if isinstance(self.right, str) else self.right
        with np.errstate(invalid="ignore"):
            ok = _OPS[self.op](a, b)
        missing = a.isna() | (df[self.right].isna() if isinstance(self.right, str) else False)
        return np.asarray(ok | missing, dtype=bool)


class GaussianCopula:
    """Gaussian-copula synthesizer for mixed-type tables (see the module docstring).

    Args:
        column_types: sdtype overrides (``numerical``, ``categorical``, ``datetime``,
            ``boolean``, ``id``); the rest are inferred as the audit infers them.
        constraints: comparisons every sampled row must satisfy.
    """

    def __init__(self, column_types: dict[str, str] | None = None,
                 constraints: list[str] = ()) -> None:
        self.column_types = dict(column_types or {})
        self.constraint_specs = list(constraints)
        self._fitted = False

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, *, seed: int = 0) -> GaussianCopula:
        if len(df) < 2:
            raise InputError(f"the copula needs at least 2 rows to fit, got {len(df)}")
        self.columns = list(df.columns)
        self.types = infer_column_types(df, self.column_types)
        df = as_datetimes({"real": df}, self.types)["real"]
        self.constraints = [Constraint.parse(c, self.columns) for c in self.constraint_specs]
        self.dtypes = {c: df[c].dtype for c in self.columns}
        rng = np.random.default_rng(seed)
        self.margins: dict[str, dict] = {}
        scores = []
        self.dims: list[tuple[str, str]] = []  # (column, "value" | "missing")
        for c in self.columns:
            t = self.types[c]
            if t == "id":
                continue
            s = df[c]
            miss = s.isna().to_numpy()
            p_miss = float(miss.mean())
            if p_miss == 1.0:
                self.margins[c] = {"kind": "all-missing"}
                continue
            m: dict = {"p_missing": p_miss}
            if p_miss > 0:
                u = np.where(miss, rng.uniform(0, p_miss, len(s)),
                             rng.uniform(p_miss, 1, len(s)))
                scores.append(ndtri(np.clip(u, 1e-9, 1 - 1e-9)))
                self.dims.append((c, "missing"))
            values = s[~miss]
            if t in ("numerical", "datetime"):
                x = values.astype("int64").to_numpy(float) if t == "datetime" \
                    else values.to_numpy(float)
                m.update(kind="numeric", sorted=np.sort(x),
                         integer=bool(t == "numerical" and np.all(x == np.round(x))))
                ranks = pd.Series(x).rank(method="average").to_numpy()  # mid-ranks for ties
                u_obs = (ranks - 0.5) / len(x)
            else:
                counts = values.astype(str).value_counts(sort=True)
                cats = list(counts.index)
                freq = counts.to_numpy(float) / counts.sum()
                edges = np.concatenate([[0.0], np.cumsum(freq)])
                edges[-1] = 1.0
                originals = {str(v): v for v in values.unique()}
                m.update(kind="categorical", categories=cats, edges=edges,
                         originals=[originals[k] for k in cats])
                code = pd.Categorical(values.astype(str), categories=cats).codes
                u_obs = rng.uniform(edges[code], edges[code + 1])
            u = np.full(len(s), 0.5)  # missing rows sit at the median of the value dimension
            u[~miss] = u_obs
            scores.append(ndtri(np.clip(u, 1e-9, 1 - 1e-9)))
            self.dims.append((c, "value"))
            self.margins[c] = m
        z = np.column_stack(scores) if scores else np.zeros((len(df), 0))
        corr = np.corrcoef(z, rowvar=False) if z.shape[1] > 1 else np.eye(z.shape[1])
        corr = np.nan_to_num(np.atleast_2d(corr), nan=0.0)
        np.fill_diagonal(corr, 1.0)
        w, v = np.linalg.eigh(corr)  # nearest positive-definite matrix by eigenvalue clipping
        self.corr = (v * np.clip(w, 1e-6, None)) @ v.T
        self.n_fit = len(df)
        self._fitted = True
        return self

    def fingerprint(self) -> str:
        """sha256 of the fitted parameters (the 'weights hash' of this generator)."""
        if not self._fitted:
            raise RuntimeError("fit first")
        h = hashlib.sha256(json.dumps({"types": self.types, "dims": self.dims,
                                       "constraints": self.constraint_specs}).encode())
        h.update(np.ascontiguousarray(self.corr).tobytes())
        for c in sorted(self.margins):
            m = self.margins[c]
            h.update(c.encode())
            if m.get("kind") == "numeric":
                h.update(m["sorted"].tobytes())
            elif m.get("kind") == "categorical":
                h.update(json.dumps(m["categories"]).encode() + m["edges"].tobytes())
        return h.hexdigest()

    # -- sampling -----------------------------------------------------------------------------
    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        k = len(self.dims)
        z = rng.multivariate_normal(np.zeros(k), self.corr, size=n, method="cholesky") \
            if k else np.zeros((n, 0))
        u = ndtr(z)
        out: dict[str, object] = {}
        missing: dict[str, np.ndarray] = {}
        for j, (c, what) in enumerate(self.dims):
            m = self.margins[c]
            if what == "missing":
                missing[c] = u[:, j] < m["p_missing"]
                continue
            if m["kind"] == "numeric":
                xs = m["sorted"]
                pos = u[:, j] * (len(xs) - 1)
                vals = np.interp(pos, np.arange(len(xs)), xs)
                if m["integer"]:
                    vals = np.round(vals)
                out[c] = vals
            else:
                idx = np.searchsorted(m["edges"], u[:, j], side="right") - 1
                idx = np.clip(idx, 0, len(m["categories"]) - 1)
                out[c] = np.asarray(m["originals"], dtype=object)[idx]
        frame = {}
        for c in self.columns:
            t = self.types[c]
            m = self.margins.get(c, {})
            if t == "id":
                col = pd.Series([f"syn-{i}" for i in range(n)], dtype=object)
            elif m.get("kind") == "all-missing":
                col = pd.Series([None] * n, dtype=object)
            else:
                col = pd.Series(out[c])
                if t == "datetime":
                    col = pd.to_datetime(col.round().astype("int64"))
                if c in missing:
                    col = col.astype(object).where(~missing[c], None) if t != "numerical" \
                        else col.where(~missing[c], np.nan)
            frame[c] = col
        df = pd.DataFrame(frame)
        for c in self.columns:
            if self.types[c] == "numerical" and self.margins.get(c, {}).get("integer") \
                    and not df[c].isna().any():
                df[c] = df[c].astype(self.dtypes[c] if pd.api.types.is_integer_dtype(
                    self.dtypes[c]) else "int64")
            elif self.types[c] == "boolean":
                df[c] = df[c].astype(object if df[c].isna().any() else bool)
        return df

    def sample(self, n: int, *, seed: int = 0, max_tries: int = 50) -> pd.DataFrame:
        """``n`` rows satisfying every constraint (rejection sampling), repeatable for a seed."""
        if not self._fitted:
            raise RuntimeError("fit first")
        rng = np.random.default_rng(seed)
        parts, have = [], 0
        for _ in range(max_tries):
            batch = self._draw(max(n - have, 16) * 2 if self.constraints else n - have, rng)
            ok = np.ones(len(batch), dtype=bool)
            for con in self.constraints:
                ok &= con.holds(batch)
            parts.append(batch[ok])
            have += int(ok.sum())
            if have >= n:
                break
        else:
            raise InputError(f"constraints {self.constraint_specs} hold for too few sampled "
                             f"rows ({have} of {n} after {max_tries} rounds)")
        out = pd.concat(parts, ignore_index=True).iloc[:n].reset_index(drop=True)
        id_cols = [c for c in self.columns if self.types[c] == "id"]
        for c in id_cols:
            out[c] = [f"syn-{seed}-{i}" for i in range(n)]
        return out


def _sdv_metadata(metadata_cls, df: pd.DataFrame):
    """SDV metadata of one table: ``detect_from_dataframes`` (SDV ≥ 1.x, the only public
    detector in 2.0), else the older single-table ``detect_from_dataframe``."""
    if hasattr(metadata_cls, "detect_from_dataframes"):
        return metadata_cls.detect_from_dataframes({"table": df}, infer_keys="primary_only")
    return metadata_cls.detect_from_dataframe(df)


def _sdv_major() -> int:
    import sdv

    return int(str(sdv.__version__).split(".")[0])


class SDVSynthesizer:
    """Adapter for SDV single-table synthesizers (``pip install sdv``; BSL-licensed, never
    required; tested against the version requirements.lock pins, 2.0.0): ``gaussian_copula``,
    ``ctgan``, ``tvae``, ``copulagan``."""

    NAMES = {"gaussian_copula": "GaussianCopulaSynthesizer", "ctgan": "CTGANSynthesizer",
             "tvae": "TVAESynthesizer", "copulagan": "CopulaGANSynthesizer"}

    def __init__(self, name: str = "gaussian_copula") -> None:
        if name not in self.NAMES:
            raise ConfigError(f"unknown SDV synthesizer '{name}' (one of {', '.join(self.NAMES)})")
        self.name = name

    def fit(self, df: pd.DataFrame, *, seed: int = 0) -> SDVSynthesizer:
        try:
            import sdv.single_table as st
            from sdv.metadata import Metadata
        except ImportError:
            raise ConfigError("engine 'sdv:*' needs the sdv package: pip install sdv") from None
        meta = _sdv_metadata(Metadata, df)
        with warnings.catch_warnings():  # "save the metadata to JSON": we detect it per fit
            warnings.filterwarnings("ignore", message=".*save_to_json.*")
            self._model = getattr(st, self.NAMES[self.name])(meta)
        np.random.seed(seed % 2**32)  # SDV samples from numpy's global generator
        # SDV 2 takes and returns {table name: frame}; SDV 1 a frame
        self._model.fit({"table": df} if _sdv_major() >= 2 else df)
        self._fp = hashlib.sha256(f"sdv:{self.name}:{seed}:{len(df)}".encode()).hexdigest()
        return self

    def fingerprint(self) -> str:
        return self._fp

    def sample(self, n: int, *, seed: int = 0) -> pd.DataFrame:
        np.random.seed(seed % 2**32)
        # SDV seeds its samplers itself (a fixed seed unless told); its only way to take
        # ours is this method (private in 1.x and 2.0; the test pins the version)
        if hasattr(self._model, "_set_random_state"):
            self._model.reset_sampling()  # the data processor's own generators (missing values)
            self._model._set_random_state(seed % 2**32)
        out = self._model.sample(num_rows=n)
        return next(iter(out.values())) if isinstance(out, dict) else out


def content_frame(table: pa.Table) -> pd.DataFrame:
    """The content columns of a record table as a DataFrame."""
    return content(table).to_pandas()


@register
class PrivacyFilter(Step):
    """Drop synthetic table rows too close to a real row (distance to closest record, the
    audit's DCR distance, exact search).

    ``min_dcr: auto`` sets the bar from the real data itself: a seeded 20% of the real rows is
    held out and the bar is the ``quantile`` of their distances to the other 80% — a kept
    synthetic row is no closer to a real row than (1 − quantile) of fresh real rows are.
    Identical copies (distance 0) are always dropped. ``real`` defaults to the pipeline
    input.
    """

    kind = "privacy-filter"
    scope = "global"

    real: str | None = None
    min_dcr: float | str = "auto"

    def preflight(self, base_dir):
        check_real_path(self.real, base_dir, self.label)
    quantile: float = Field(0.05, gt=0, lt=1)
    column_types: dict[str, str] = {}

    def apply(self, table: pa.Table, ctx: StepContext) -> StepOutput:
        from synthloop.measures.dcr import DistanceSpace, nearest_records
        if table.num_rows == 0:
            return StepOutput(table)
        src = ctx.path(self.real) if self.real else ctx.source
        if src is None:
            raise ConfigError(f"step {self.label}: no real data (set 'real')")
        real = content_frame(read_records(src, text_column=None))
        syn_all = content_frame(table)
        missing = [c for c in real.columns if c not in syn_all.columns]
        if missing:
            raise InputError(f"step {self.label}: records lack the real column '{missing[0]}'")
        syn = syn_all[list(real.columns)]
        types = infer_column_types(real, self.column_types)
        frames = as_datetimes({"real": real, "synthetic": syn}, types)
        real, syn = frames["real"], frames["synthetic"]
        num = [c for c, t in types.items() if t in ("numerical", "datetime")]
        cat = [c for c, t in types.items() if t in ("categorical", "boolean")]
        for frame in (real, syn):
            for c in num:
                if types[c] == "datetime":
                    frame[c] = frame[c].astype("int64").astype(float)
        space = DistanceSpace.fit(real, num, cat, [syn])
        d = nearest_records(space, syn, real)[:, 0]
        if self.min_dcr == "auto":
            rng = np.random.default_rng(ctx.seed)
            perm = rng.permutation(len(real))
            cut = max(1, len(real) // 5)
            hold, train = real.iloc[perm[:cut]], real.iloc[perm[cut:]]
            bar = float(np.quantile(nearest_records(space, hold, train)[:, 0], self.quantile))
        elif isinstance(self.min_dcr, str):
            raise ConfigError(f"step {self.label}: min_dcr must be a number or 'auto'")
        else:
            bar = float(self.min_dcr)
        reasons = [("identical to a real row" if x == 0 else
                    f"distance to closest real row {x:.4f} < {bar:.4f}")
                   if (x == 0 or x < bar) else None for x in d]

        return split(table, reasons)
