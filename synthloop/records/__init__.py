"""Records: content plus provenance, and their I/O (Parquet, JSONL, CSV, plain text)."""

from synthloop.records.io import (
    atomic_path,
    read_csv,
    read_jsonl,
    read_parquet,
    read_records,
    read_text_corpus,
    write_jsonl,
    write_parquet,
    write_records,
    write_text_atomic,
)
from synthloop.records.schema import (
    PROVENANCE_COLUMNS,
    SCHEMA_VERSION,
    Generator,
    record_id,
    text_records,
    validate_provenance,
    with_provenance,
)

__all__ = [
    "PROVENANCE_COLUMNS", "SCHEMA_VERSION", "Generator", "atomic_path", "read_csv",
    "read_jsonl", "read_parquet", "read_records", "read_text_corpus", "record_id",
    "text_records", "validate_provenance", "with_provenance", "write_jsonl", "write_parquet",
    "write_records", "write_text_atomic",
]
