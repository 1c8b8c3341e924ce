"""Quality audit of a synthetic dataset against real data: ``synthloop.audit(real, synthetic)``.

Every metric is measured on (real, synthetic) and, the same way, on (real, holdout) — real data
the generator never saw — so each number is shown beside what real data itself scores.

The module is callable: ``synthloop.audit(...)`` is :func:`audit`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from synthloop.audit.base import AuditWarning, FeatureMemo, MetricResult
from synthloop.audit.relational import RelationalAuditConfig
from synthloop.audit.result import AuditResult
from synthloop.audit.table import TableAuditConfig
from synthloop.audit.text import TextAuditConfig
from synthloop.audit.warnings import warning_margin, warning_threshold, warnings_for
from synthloop.errors import ConfigError, InputError
from synthloop.progress import Progress
from synthloop.records.io import TEXT_SUFFIXES, load_texts, read_table_file
from synthloop.records.schema import MARKING_COLUMNS, PROVENANCE_COLUMNS

__all__ = ["AuditResult", "AuditWarning", "FeatureMemo", "MetricResult",
           "RelationalAuditConfig", "TableAuditConfig",
           "TextAuditConfig", "audit", "detect_kind", "load_table", "load_texts", "resolve_kind",
           "warning_margin", "warning_threshold", "warnings_for"]

Data = str | Path | Sequence[str] | pd.DataFrame


def _drop_provenance(df: pd.DataFrame) -> pd.DataFrame:
    """Content columns only: provenance and marking columns (``digital_source_type``,
    ``watermark``) describe where a row came from, not what it says."""
    meta = (*PROVENANCE_COLUMNS, *MARKING_COLUMNS)
    return df.drop(columns=[c for c in df.columns if c in meta])


def load_table(path: str | Path) -> pd.DataFrame:
    """A table dataset (CSV, Parquet, JSONL) as a DataFrame, provenance columns removed."""
    return read_table_file(path).to_pandas()


def detect_kind(path: str | Path, text_field: str = "text") -> str:
    """``relational`` for a schema YAML (linked tables), ``text`` for plain text or data with
    a ``text_field`` column, else ``table``."""
    p = Path(path)
    if p.suffix.lower() in (".yaml", ".yml"):
        return "relational"
    if p.suffix.lower() in TEXT_SUFFIXES:
        return "text"
    if p.suffix.lower() in (".csv", ".parquet", ".pq", ".jsonl", ".json", ".ndjson") or \
            p.is_dir():
        try:
            if p.suffix.lower() == ".csv":
                cols = pd.read_csv(p, nrows=0).columns
            elif p.suffix.lower() in (".parquet", ".pq") or p.is_dir():
                import pyarrow.parquet as pq

                f = p if p.is_file() else sorted(p.glob("*.parquet"))[0]
                cols = pq.read_schema(f).names
            else:
                with open(p, encoding="utf-8", errors="replace") as fh:
                    import json

                    cols = list(json.loads(fh.readline() or "{}"))
        except Exception:
            return "table"  # the reader will name the problem
        return "text" if text_field in cols else "table"
    return "table"


def resolve_kind(real: Data, kind: str | None = None, text_field: str = "text") -> str:
    """``kind`` checked (``text`` or ``table``), or inferred from the real data when None:
    lists of strings and data with a ``text_field`` column are text, other data tables."""
    if kind is None:
        if isinstance(real, str | Path):
            kind = detect_kind(real, text_field)
        else:
            kind = "table" if isinstance(real, pd.DataFrame) and text_field not in real.columns \
                else "text"
    if kind not in ("text", "table", "relational"):
        raise ConfigError(f"kind must be 'text', 'table' or 'relational', got '{kind}'",
                          fields=("kind",))
    return kind


def _as_texts(x: Data, text_field: str, name: str) -> tuple[list[str], str]:
    if isinstance(x, str | Path):
        return load_texts(x, text_field=text_field), str(x)
    if isinstance(x, pd.DataFrame):
        if text_field not in x.columns:
            raise InputError(f"{name}: no '{text_field}' column")
        return x[text_field].astype(str).tolist(), "<DataFrame>"
    texts = list(x)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise InputError(f"{name}: item {bad} is {type(texts[bad]).__name__}, not a string")
    return texts, "<list>"


def _as_frame(x: Data, name: str) -> tuple[pd.DataFrame, str]:
    if isinstance(x, str | Path):
        df, where = load_table(x), str(x)
    elif isinstance(x, pd.DataFrame):
        df, where = _drop_provenance(x), "<DataFrame>"
    else:
        raise InputError(f"{name}: a table audit needs a DataFrame or a file path")
    _check_frame(df, where)
    return df, where


def _check_frame(df: pd.DataFrame, where: str) -> None:
    """One error naming the column (and row) a table audit cannot measure."""
    import numpy as np

    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise InputError(f"{where}: column '{dup[0]}' appears more than once")
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_float_dtype(col.dtype):
            bad = np.flatnonzero(np.isinf(col.to_numpy(dtype=float, na_value=np.nan)))
            if len(bad):
                raise InputError(f"{where}: row {int(bad[0])}: column '{c}' is infinite "
                                 f"({col.iloc[bad[0]]}); use an empty cell for a missing "
                                 f"value")


def audit(real: Data, synthetic: Data, holdout: Data | None = None, *,
          kind: str | None = None, text_field: str = "text",
          config: TextAuditConfig | TableAuditConfig | None = None,
          margin_scale: float = 1.0, progress: Progress | None = None,
          memo: FeatureMemo | None = None, **options: Any) -> AuditResult:
    """Audit ``synthetic`` against ``real`` (and a real ``holdout``, split off ``real`` with
    the config's seed when None).

    Args:
        real, synthetic, holdout: file paths (JSONL/CSV/Parquet/plain text), lists of texts,
            or DataFrames; for linked tables a schema YAML (real, holdout) and a folder with
            one file per table (synthetic).
        kind: ``text``, ``table`` or ``relational``; inferred when None (a ``.yaml`` is a
            schema; lists of strings and data with a ``text_field`` column are text).
        text_field: the text column of text data.
        config: :class:`TextAuditConfig`, :class:`TableAuditConfig` or
            :class:`RelationalAuditConfig`; ``options`` set fields
            of the default one instead (``seed=1, embeddings=False``...).
        margin_scale: multiplies every warning margin (2 = warn only on twice the deviation).
        progress: gets a stage per group of metrics (:class:`synthloop.progress.Progress`).
        memo: a :class:`FeatureMemo` shared by audits of the same real data (text: the real
            and holdout sides' embeddings and reference-LM statistics are computed once).

    Returns:
        :class:`AuditResult` (scores, per-metric breakdowns, warnings, ``to_html()``,
        ``to_json()``).
    """
    kind = resolve_kind(real, kind, text_field)
    cfg_cls = {"text": TextAuditConfig, "relational": RelationalAuditConfig}.get(
        kind, TableAuditConfig)
    if config is None:
        config = cfg_cls(**options)
    elif options:
        raise ConfigError("pass either config or keyword options, not both")
    if not isinstance(config, cfg_cls):
        raise ConfigError(f"a {kind} audit needs a {cfg_cls.__name__}")
    if kind == "relational":
        from synthloop.audit.relational import audit_schema

        if not isinstance(real, str | Path) or not isinstance(synthetic, str | Path):
            raise InputError("a relational audit takes a schema YAML (real) and a folder of "
                             "tables (synthetic); for frames call "
                             "synthloop.audit.relational.audit_relational")
        result = audit_schema(real, synthetic, holdout, config=config, progress=progress)
        result.warnings = warnings_for(result.metrics, margin_scale=margin_scale)
        return result
    if kind == "text":
        from synthloop.audit.text import audit_text

        r, r_src = _as_texts(real, text_field, "real")
        s, s_src = _as_texts(synthetic, text_field, "synthetic")
        h, h_src = _as_texts(holdout, text_field, "holdout") if holdout is not None \
            else (None, "split from real")
        for name, docs in (("real", r), ("synthetic", s), ("holdout", h)):
            if docs is not None and not docs:
                raise InputError(f"{name}: no documents")
        metrics, data = audit_text(r, s, h, config, progress, memo)
    else:
        from synthloop.audit.table import audit_table

        r, r_src = _as_frame(real, "real")
        s, s_src = _as_frame(synthetic, "synthetic")
        h, h_src = _as_frame(holdout, "holdout") if holdout is not None \
            else (None, "split from real")
        metrics, data = audit_table(r, s, h, config, progress)
    sampling = data.sampling
    plot_data = {k: v for k, v in vars(data).items() if k != "sampling"}
    return AuditResult(kind=kind, metrics=metrics,
                       warnings=warnings_for(metrics, margin_scale=margin_scale),
                       sampling=sampling, data=plot_data,
                       inputs={"real": r_src, "synthetic": s_src, "holdout": h_src})


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> AuditResult:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
