"""Reading and writing record datasets: plain text, JSONL, CSV and Parquet.

Readers fail with one :class:`~synthloop.errors.InputError` line naming the file, line/row and
field at fault. Writers are atomic: they write a temporary file beside the target and rename it,
so a crash never leaves a half-written dataset behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from synthloop.errors import InputError
from synthloop.records.schema import (
    MARKING_COLUMNS,
    PROVENANCE_COLUMNS,
    conform_provenance,
    with_provenance,
)

#: Default cap on one record's size in bytes (a guard against runaway lines).
MAX_RECORD_BYTES = 16 * 1024 * 1024
TEXT_SUFFIXES = (".txt", ".text", ".md")


def _utf8(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{path}: line {line}: not valid UTF-8 "
                         f"(byte 0x{data[e.start]:02x} at offset {e.start})") from None


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None


def text_files(path: str | Path, pattern: str = "*.txt") -> list[Path]:
    """The text files of a corpus: the file itself, or a folder's files matching ``pattern``
    (recursively), sorted by path so the order is the same on every machine."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    if p.is_file():
        return [p]
    files = sorted(f for f in p.rglob(pattern) if f.is_file())
    if not files:
        raise InputError(f"{p}: no files matching '{pattern}' in this folder")
    return files


def read_text_corpus(path: str | Path, pattern: str = "*.txt") -> list[tuple[str, str]]:
    """Read a plain-text corpus as ``(file name, text)`` documents, one per file.

    Text is decoded as strict UTF-8 (a byte-order mark is dropped) and line endings are
    normalised to ``\\n``. Empty files are an error: a corpus must hold text.
    """
    docs = []
    for f in text_files(path, pattern):
        text = _utf8(_read_bytes(f), f).lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        if not text.strip():
            raise InputError(f"{f}: empty file (no text)")
        docs.append((str(f.relative_to(path) if Path(path).is_dir() else f.name), text))
    return docs


def _jsonl_rows(path: Path, max_record_bytes: int) -> Iterator[tuple[int, dict]]:
    data = _read_bytes(path)
    if not data.strip():
        raise InputError(f"{path}: empty file (no records)")
    text = _utf8(data, path)
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if len(line) > max_record_bytes:
            raise InputError(f"{path}: line {lineno}: record is {len(line):,} characters, over "
                             f"the limit of {max_record_bytes:,}")
        try:
            obj = json.loads(line, parse_constant=_reject_constant)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: line {lineno}: invalid JSON ({e.msg} at column "
                             f"{e.colno})") from None
        except RecursionError:
            raise InputError(f"{path}: line {lineno}: JSON nested too deeply") from None
        except ValueError as e:  # NaN/Infinity, integers of more than 4,300 digits
            raise InputError(f"{path}: line {lineno}: {str(e).split(';')[0]}") from None
        if "\\ud" in line or "\\uD" in line:  # only then can a surrogate be there
            where = _surrogate(obj)
            if where is not None:
                raise InputError(f"{path}: line {lineno}: field '{where}' has a lone surrogate "
                                 f"(\\ud800-\\udfff), not valid Unicode")
        if not isinstance(obj, dict):
            raise InputError(f"{path}: line {lineno}: expected a JSON object, "
                             f"got {type(obj).__name__}")
        yield lineno, obj


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (use null)")


def _surrogate(value: object, path: str = "") -> str | None:
    """The field path of the first string holding a lone surrogate, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "<value>"
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            where = _surrogate(k, path) and (path or "<key>")
            where = where or _surrogate(v, f"{path}.{k}" if path else str(k))
            if where:
                return where
    elif isinstance(value, list):
        for i, v in enumerate(value):
            where = _surrogate(v, f"{path}[{i}]")
            if where:
                return where
    return None


def _one_type(values: list) -> bool:
    try:
        pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return False
    return True


def _has_empty_struct(t: pa.DataType) -> bool:
    """True for a struct type with no fields, at any depth (Parquet cannot write one)."""
    if pa.types.is_struct(t):
        return t.num_fields == 0 or any(_has_empty_struct(t.field(i).type)
                                        for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_empty_struct(t.value_type)
    if pa.types.is_map(t):
        return _has_empty_struct(t.key_type) or _has_empty_struct(t.item_type)
    return False


def _int64_overflow(rows: list[dict]) -> tuple[int, str] | None:
    """(row, field) of the first integer outside int64, or None."""
    for i, row in enumerate(rows):
        for k, v in row.items():
            if isinstance(v, int) and not -(1 << 63) <= v < (1 << 63):
                return i, k
    return None


def read_jsonl(path: str | Path, *, required: Sequence[str] = (),
               text_field: str | None = "text",
               max_record_bytes: int = MAX_RECORD_BYTES) -> pa.Table:
    """Read a JSONL file (one JSON object per line) into an Arrow table.

    Args:
        required: fields every object must have.
        text_field: a field that must be a string where present (``None`` to skip the check).
        max_record_bytes: reject any line longer than this.
    """
    p = Path(path)
    rows, linenos = [], []
    for lineno, obj in _jsonl_rows(p, max_record_bytes):
        for name in required:
            if name not in obj:
                raise InputError(f"{p}: line {lineno}: missing field '{name}'")
        if text_field and text_field in obj and not isinstance(obj[text_field], str):
            raise InputError(f"{p}: line {lineno}: field '{text_field}' must be a string, "
                             f"got {type(obj[text_field]).__name__}")
        rows.append(obj)
        linenos.append(lineno)
    if not rows:
        raise InputError(f"{p}: empty file (no records)")
    # every field any record has (pyarrow's from_pylist would keep only the first record's)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    if not keys:
        raise InputError(f"{p}: records have no fields (every line is {{}})")
    try:
        table = pa.table({k: pa.array([row.get(k) for row in rows]) for k in keys})
    except OverflowError:
        where = _int64_overflow(rows)
        if where is None:
            raise InputError(f"{p}: a number is too large for a 64-bit column") from None
        raise InputError(f"{p}: line {linenos[where[0]]}: field '{where[1]}' is an integer "
                         f"outside the 64-bit range") from None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        field = next((k for k in keys if not _one_type([row.get(k) for row in rows])), None)
        where = f" in field '{field}'" if field else ""
        raise InputError(f"{p}: inconsistent types across lines{where} "
                         f"({str(e).splitlines()[0][:200]})") from None
    for f in table.schema:
        if _has_empty_struct(f.type):
            raise InputError(f"{p}: field '{f.name}' only ever holds empty objects ({{}}), which "
                             f"a dataset cannot store; drop it or give it fields")
    return table


def read_csv(path: str | Path, *, required: Sequence[str] = ()) -> pa.Table:
    """Read a CSV file with a header row into an Arrow table (types inferred)."""
    p = Path(path)
    data = _read_bytes(p)
    _utf8(data, p)
    if not data.strip():
        raise InputError(f"{p}: empty file (no records)")
    try:
        # an empty cell is a missing value, for text columns too; a block holds the largest
        # record (up to MAX_RECORD_BYTES), so long cells are read, not refused
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(block_size=max(1 << 20, min(len(data) + 1,
                                                                       MAX_RECORD_BYTES))),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    except pa.ArrowInvalid as e:
        raise InputError(f"{p}: malformed CSV ({str(e).splitlines()[0]})") from None
    if table.num_rows == 0:
        raise InputError(f"{p}: no rows below the header")
    seen: set[str] = set()
    for name in table.column_names:
        if name in seen:
            raise InputError(f"{p}: header: column '{name}' appears more than once")
        seen.add(name)
    _require_columns(table, required, p)
    return table


def read_parquet(path: str | Path, *, required: Sequence[str] = ()) -> pa.Table:
    """Read a Parquet file, or a folder of Parquet shards, into an Arrow table."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
    if not files:
        raise InputError(f"{p}: no .parquet files in this folder")
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f))
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0]})") \
                from None
    try:
        # shards may add columns (a scorer's column in some shards): missing ones become null
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 \
            else tables[0]
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InputError(f"{p}: shards have different schemas ({e})") from None
    if table.num_rows == 0:
        raise InputError(f"{p}: no rows")
    _require_columns(table, required, p)
    return table


def dataset_files(path: str | Path) -> tuple[Path, list[Path]]:
    """A Parquet dataset's ``(folder, files in order)``: a ``.parquet`` file or a folder of
    Parquet shards."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or directory")
    if p.is_dir():
        files = sorted(p.glob("*.parquet"))
        if not files:
            raise InputError(f"{p}: no .parquet files in this folder")
        return p, files
    if p.suffix.lower() not in (".parquet", ".pq"):
        raise InputError(f"{p}: a dataset is a Parquet file or a folder of Parquet shards")
    return p.parent, [p]


def read_parquet_schema(f: str | Path) -> pa.Schema:
    """One Parquet file's schema; an unreadable file is one error line."""
    try:
        return pq.read_schema(f)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0]})") \
            from None


def read_parquet_file(f: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One Parquet file (only ``columns`` when given; empty files allowed); an unreadable
    file is one error line."""
    try:
        return pq.read_table(f, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0]})") \
            from None


def read_parquet_columns(f: str | Path, *, required: Sequence[str] = (),
                         optional: Sequence[str] = ()) -> pa.Table:
    """The ``required`` columns of one Parquet file (a missing one is an error naming it) and
    those of ``optional`` it has; only these columns are read."""
    names = read_parquet_schema(f).names
    missing = [c for c in required if c not in names]
    if missing:
        have = ", ".join(names) or "none"
        raise InputError(f"{f}: missing column '{missing[0]}' (columns: {have})",
                         fields=(missing[0],))
    return read_parquet_file(f, [*required, *(c for c in optional if c in names)])


def _require_columns(table: pa.Table, required: Sequence[str], path: Path) -> None:
    for name in required:
        if name not in table.column_names:
            have = ", ".join(table.column_names) or "none"
            raise InputError(f"{path}: missing column '{name}' (columns: {have})")


def read_table_file(path: str | Path) -> pa.Table:
    """A table (CSV, Parquet file or folder, JSONL) with its content columns only: provenance
    and marking columns, which say where a row came from rather than what it says, are
    dropped."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        table = read_csv(p)
    elif suffix in (".parquet", ".pq") or p.is_dir():
        table = read_parquet(p)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        table = read_jsonl(p, text_field=None)
    elif not p.exists():
        raise InputError(f"{p}: no such file or directory")
    else:
        raise InputError(f"{p}: unknown table format '{suffix}' (expected .csv, .parquet or "
                         f".jsonl)")
    meta = (*PROVENANCE_COLUMNS, *MARKING_COLUMNS)
    return table.drop_columns([c for c in table.column_names if c in meta])


def read_records(path: str | Path, *, text_column: str | None = "text",
                 required: Sequence[str] = ()) -> pa.Table:
    """Read any supported dataset into a record table with provenance columns.

    ``.jsonl``/``.json``, ``.csv``, ``.parquet`` (or a folder of shards) and plain text
    (``.txt``; one record per file) are recognised by suffix. Tables without provenance get
    real-data provenance (origin ``real``, generation 0); tables with it are validated.

    Args:
        text_column: for text data, the column holding the text, which must be strings.
        required: further columns that must be present.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() and any(p.glob("*.parquet")):
        table = read_parquet(p)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        table = read_jsonl(p, text_field=text_column)
    elif suffix == ".csv":
        table = read_csv(p)
    elif suffix in (".parquet", ".pq"):
        table = read_parquet(p)
    elif suffix in TEXT_SUFFIXES or p.is_dir():
        docs = read_text_corpus(p)
        table = pa.table({"text": [t for _, t in docs], "source": [n for n, _ in docs]})
    elif not p.exists():
        raise InputError(f"{p}: no such file or directory")
    else:
        raise InputError(f"{p}: unknown format '{suffix}' (expected .jsonl, .csv, .parquet "
                         f"or .txt)")
    _require_columns(table, required, p)
    if text_column and text_column in table.column_names:
        col = table.schema.field(text_column).type
        if not (pa.types.is_string(col) or pa.types.is_large_string(col)):
            raise InputError(f"{p}: column '{text_column}' has type {col}, expected string")
        nulls = table.column(text_column).null_count
        if nulls:
            first = table.column(text_column).to_pylist().index(None)
            raise InputError(f"{p}: row {first}: field '{text_column}' is null")
    if all(c in table.column_names for c in PROVENANCE_COLUMNS):
        return conform_provenance(table, str(p))
    return with_provenance(table)


def load_texts(path: str | Path, *, text_field: str = "text") -> list[str]:
    """Documents of a text dataset: JSONL/CSV/Parquet (the ``text_field`` column) or plain
    text (a ``.txt`` file or a folder of them, split into paragraphs at blank lines — the
    unit of a text audit, detection or watermark scan; :func:`read_records` reads a ``.txt``
    file as one record)."""
    p = Path(path)
    if p.suffix.lower() in TEXT_SUFFIXES or (p.is_dir() and not any(p.glob("*.parquet"))):
        docs = []
        for _, text in read_text_corpus(p):
            docs.extend(" ".join(par.split()) for par in text.split("\n\n") if par.strip())
        return docs
    table = read_records(p, text_column=text_field)
    if text_field not in table.column_names:
        have = ", ".join(c for c in table.column_names if not c.startswith("_"))
        raise InputError(f"{p}: no '{text_field}' column (columns: {have}); name the text "
                         f"column with text_field", fields=("text_field",))
    return table.column(text_field).to_pylist()


def _umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Names of the temporary files :func:`atomic_path` writes beside a target.
TMP_GLOB = ".*.tmp"


def remove_orphan_temporaries(folder: str | Path) -> int:
    """Delete the temporary files a killed writer left under ``folder`` (``.NAME.*.tmp``);
    returns how many. Call only when no other process writes there."""
    n = 0
    for f in Path(folder).rglob(TMP_GLOB):
        if f.is_file():
            f.unlink(missing_ok=True)
            n += 1
    return n


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp's 0600 is not what the user asked
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_parquet(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` to Parquet atomically (zstd); returns the path."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def write_jsonl(table: pa.Table, path: str | Path) -> Path:
    """Write ``table`` as JSONL (one object per row, UTF-8) atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in table.to_pylist():
            fh.write(json.dumps(row, ensure_ascii=False, default=str))
            fh.write("\n")
    return Path(path)


def write_records(table: pa.Table, path: str | Path) -> Path:
    """Write a record table by suffix: ``.parquet`` or ``.jsonl``."""
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return write_parquet(table, path)
    if suffix in (".jsonl", ".ndjson"):
        return write_jsonl(table, path)
    raise InputError(f"{path}: cannot write format '{suffix}' (use .parquet or .jsonl)")


def jsonable(x: Any) -> Any:
    """``x`` with what JSON cannot hold made plain: numpy scalars as Python numbers, NaN as
    None, ±inf as ``"inf"``/``"-inf"``, tuples as lists, keys as strings (recursively)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
    return x


def json_text(obj: Any, *, indent: int = 2) -> str:
    """Strict JSON of :func:`jsonable` ``obj`` (UTF-8 kept, no NaN), newline-terminated."""
    return json.dumps(jsonable(obj), indent=indent, ensure_ascii=False, allow_nan=False) + "\n"


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write a UTF-8 text file atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


#: Limits of :func:`read_yaml`: the file's size, and how many nodes its aliases may expand to
#: (a "billion laughs" document is a few hundred bytes that expand to 10⁹ nodes).
MAX_YAML_BYTES = 4 << 20
MAX_YAML_NODES = 200_000


def _strict_yaml_loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """Safe loading that refuses duplicate mapping keys."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = set()
                for key_node, _ in node.value:
                    if not isinstance(key_node, yaml.ScalarNode):
                        continue
                    key = key_node.value
                    if key in seen and key != "<<":
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key '{key}'", key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep)

    return StrictLoader


def _expanded_nodes(root, limit: int) -> int:
    """Nodes the document has once every alias is expanded (stops counting past ``limit``);
    ``ValueError`` for an alias that contains itself."""
    import yaml

    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in active:
            raise ValueError("an alias refers to a node that contains it")
        active.add(key)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                n += size(child)
                if n > limit:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                n += size(k) + size(v)
                if n > limit:
                    break
        active.discard(key)
        memo[key] = n
        return n

    return size(root)


def read_yaml(path: str | Path, error: type[Exception] = InputError) -> object:
    """Parse a YAML file with a safe loader; a bad file is one ``error`` naming the line.

    Refused besides invalid YAML: files over :data:`MAX_YAML_BYTES`, documents whose aliases
    expand to more than :data:`MAX_YAML_NODES` nodes (alias bombs) or contain themselves,
    duplicate keys in a mapping (the later one would silently win), nesting too deep to parse.
    """
    import yaml

    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise error(f"{p}: cannot read ({e.strerror})") from None
    if size > MAX_YAML_BYTES:
        raise error(f"{p}: {size:,} bytes, over the limit of {MAX_YAML_BYTES:,} for a YAML file")
    loader = None
    try:
        loader = _strict_yaml_loader()(p.read_text(encoding="utf-8"))
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_nodes(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise error(f"{p}: aliases expand to more than {MAX_YAML_NODES:,} nodes "
                        f"(refused: an alias bomb, or a document too large for a config)")
        return loader.construct_document(node)
    except UnicodeDecodeError:
        raise error(f"{p}: not valid UTF-8") from None
    except RecursionError:
        raise error(f"{p}: nested too deeply") from None
    except ValueError as e:
        raise error(f"{p}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise error(f"{p}: {where}{problem}") from None
    finally:
        if loader is not None:
            loader.dispose()
