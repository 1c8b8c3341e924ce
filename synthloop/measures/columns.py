"""Column typing of tables: the SDMetrics sdtype of each column, and datetime conversion.

Shared by the table audit, the table generators and anything else that must treat a column
as numbers, dates, categories or identifiers.
"""

from __future__ import annotations

import pandas as pd

from synthloop.errors import ConfigError, InputError

#: Column types, as SDMetrics names them ("id" columns are not compared).
SDTYPES = ("numerical", "datetime", "categorical", "boolean", "id")


def infer_column_types(df: pd.DataFrame, overrides: dict[str, str] | None = None
                       ) -> dict[str, str]:
    """sdtype per column from pandas dtypes: bool → boolean, numbers → numerical, datetimes →
    datetime, strings → categorical, except strings unique on (almost) every row, which are
    ``id`` (names, free text) and are not compared."""
    overrides = overrides or {}
    for c, t in overrides.items():
        if c not in df.columns:
            raise ConfigError(f"column_types: no column '{c}' in the data")
        if t not in SDTYPES:
            raise ConfigError(f"column_types: '{c}' has unknown type '{t}' (expected one of "
                              f"{', '.join(SDTYPES)})")
    out = {}
    for c in df.columns:
        s = df[c]
        if c in overrides:
            out[c] = overrides[c]
        elif pd.api.types.is_bool_dtype(s):
            out[c] = "boolean"
        elif pd.api.types.is_numeric_dtype(s):
            out[c] = "numerical"
        elif pd.api.types.is_datetime64_any_dtype(s) or _looks_like_dates(s):
            out[c] = "datetime"
        else:
            nonnull = s.dropna()
            n_unique = nonnull.nunique()
            out[c] = "id" if len(nonnull) > 50 and n_unique > 0.9 * len(nonnull) \
                else "categorical"
    return out


def _looks_like_dates(s: pd.Series, sample: int = 200) -> bool:
    """Object column of dates: ``datetime.date`` values (Arrow date32) or ISO-8601 strings."""
    import datetime

    v = s.dropna()
    if v.empty or v.dtype != object:
        return False
    v = v.iloc[:sample]
    if all(isinstance(x, datetime.date) for x in v):
        return True
    if not all(isinstance(x, str) for x in v):
        return False
    try:
        pd.to_datetime(v, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return bool(v.str.match(r"^\d{4}-\d{2}-\d{2}").all())


def as_datetimes(frames: dict[str, pd.DataFrame], types: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Datetime-typed columns converted to ``datetime64`` in every frame, or one error naming
    the frame, column and value that is not a date."""
    out = {}
    for name, df in frames.items():
        df = df.copy()
        for c, t in types.items():
            if t != "datetime" or pd.api.types.is_datetime64_any_dtype(df[c]):
                continue
            try:
                df[c] = pd.to_datetime(df[c], format="ISO8601") if df[c].dtype == object \
                    and df[c].dropna().map(type).eq(str).all() else pd.to_datetime(df[c])
            except (ValueError, TypeError) as e:
                raise InputError(f"{name} data: column '{c}' is typed datetime but holds a value "
                                 f"that is not a date ({str(e).splitlines()[0]})") from None
            if getattr(df[c].dt, "tz", None) is not None:
                df[c] = df[c].dt.tz_convert(None)
        out[name] = df
    return out
