"""The poisoning scan over a dataset file, and its quarantine: what ``synthloop poison scan``
does, as library calls."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from synthloop.errors import InputError
from synthloop.poison.scan import ScanConfig, ScanResult, scan, split_fields
from synthloop.records.io import read_records, write_parquet


def _strings(table: pa.Table, name: str, source: str) -> list[str]:
    col = table.column(name)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InputError(f"{source}: field '{name}' has type {col.type}, expected string")
    values = col.to_pylist()
    if col.null_count:
        raise InputError(f"{source}: row {values.index(None)}: field '{name}' is null")
    return values


def scan_dataset(data: str | Path, *, field: str = "text",
                 config: ScanConfig | None = None) -> tuple[pa.Table, ScanResult]:
    """Read ``data`` (JSONL/CSV/Parquet/plain text) and scan it: ``(records, result)``.

    ``field`` is the text field, or ``PROMPT,RESPONSE`` for instruction data (triggers are then
    mined in the prompt and label disagreement is checked on the response). Records keep their
    own ``id`` (see :func:`synthloop.records.schema.with_provenance`).
    """
    prompt_field, text_field = split_fields(field)
    table = read_records(data, text_column=text_field,
                         required=[f for f in (prompt_field, text_field) if f])
    texts = _strings(table, text_field, str(data))
    prompts = _strings(table, prompt_field, str(data)) if prompt_field else None
    return table, scan(texts, prompts=prompts, cfg=config or ScanConfig())


def write_quarantine(table: pa.Table, result: ScanResult, folder: str | Path
                     ) -> tuple[Path, Path]:
    """Write ``quarantine.parquet`` (flagged records with ``poison_score`` and
    ``poison_reasons``) and ``clean.parquet`` (the rest) into ``folder``; the input is never
    modified. Returns both paths."""
    folder = Path(folder)
    flags = pa.array(result.flagged)
    q = table.filter(flags)
    q = q.append_column("poison_score", pa.array(result.score[result.flagged], pa.float64()))
    q = q.append_column("poison_reasons", pa.array(
        ["; ".join(r) for r, f in zip(result.reasons, result.flagged, strict=True) if f],
        pa.string()))
    quarantine = write_parquet(q, folder / "quarantine.parquet")
    clean = write_parquet(table.filter(pc.invert(flags)), folder / "clean.parquet")
    return quarantine, clean
