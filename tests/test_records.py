from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthloop.errors import InputError
from synthloop.records import (
    PROVENANCE_COLUMNS,
    Generator,
    read_records,
    read_text_corpus,
    record_id,
    text_records,
    write_jsonl,
    write_parquet,
)
from synthloop.records.io import atomic_path


def test_record_id_is_sha256_of_nfc_content():
    composed = unicodedata.normalize("NFC", "café")
    decomposed = unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    assert record_id(composed) == record_id(decomposed)
    assert len(record_id("x")) == 64
    assert record_id("a") != record_id("b")
    assert record_id({"b": 1, "a": "x"}) == record_id({"a": "x", "b": 1})


def test_text_records_carry_provenance():
    gen = Generator("tiny#gen0", "ab" * 32, {"temperature": 1.0}, seed=7)
    t = text_records(["one", "two"], origin="synthetic", generation=1, generator=gen,
                     parents=[["p1"], ["p2"]], run_id="r", extra={"score": [1.0, 2.0]})
    assert t.column_names[:2] == ["text", "score"]
    # provenance, then the IPTC marking every synthetic record carries
    assert tuple(t.column_names[2:-1]) == PROVENANCE_COLUMNS
    assert t.column_names[-1] == "digital_source_type"
    assert "digital_source_type" not in text_records(["x"]).column_names
    row = t.to_pylist()[1]
    assert row["digital_source_type"] == \
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    assert row["origin"] == "synthetic" and row["generation"] == 1
    assert row["parents"] == ["p2"] and row["run_id"] == "r"
    assert Generator.from_json(row["generator"]).seed == 7
    assert row["id"] == record_id("two")


def test_text_records_reject_inconsistent_provenance():
    with pytest.raises(ValueError):
        text_records(["x"], origin="synthetic", generation=1)  # no generator
    with pytest.raises(ValueError):
        text_records(["x"], origin="real", generation=2)
    with pytest.raises(ValueError):
        text_records(["x"], origin="made-up")


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_roundtrip_keeps_records(tmp_path: Path, suffix: str):
    t = text_records(["α", "b"], origin="real")
    path = tmp_path / f"d{suffix}"
    (write_parquet if suffix == ".parquet" else write_jsonl)(t, path)
    back = read_records(path)
    assert back.column("text").to_pylist() == ["α", "b"]
    assert back.column("id").to_pylist() == t.column("id").to_pylist()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left


def test_reading_plain_table_adds_real_provenance(tmp_path: Path):
    p = tmp_path / "x.csv"
    p.write_text("text,label\nhello,1\nworld,0\n", encoding="utf-8")
    t = read_records(p)
    assert t.column("origin").to_pylist() == ["real", "real"]
    assert t.column("generation").to_pylist() == [0, 0]
    assert t.column("id").to_pylist()[0] == record_id("hello")


def test_atomic_write_leaves_target_untouched_on_failure(tmp_path: Path):
    target = tmp_path / "keep.txt"
    target.write_text("original")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "original"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# --- bad input: one clear error naming file, line/row and field ---------------------------

def _err(path: Path, **kw) -> str:
    with pytest.raises(InputError) as e:
        read_records(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_empty_file(tmp_path: Path):
    p = tmp_path / "e.jsonl"
    p.write_text("\n\n")
    assert "empty" in _err(p)


def test_non_utf8_names_line(tmp_path: Path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    assert "line 2" in _err(p) and "UTF-8" in _err(p)


def test_non_utf8_text_corpus(tmp_path: Path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"fine\nstill fine\n\xff\xfe broken\n")
    with pytest.raises(InputError, match=r"line 3: not valid UTF-8"):
        read_text_corpus(p)


def test_malformed_json_names_line(tmp_path: Path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"text": "a"}\n{"text": "b"\n')
    assert "line 2: invalid JSON" in _err(p)


def test_wrong_type_names_field(tmp_path: Path):
    p = tmp_path / "w.jsonl"
    p.write_text('{"text": "a"}\n{"text": 5}\n')
    msg = _err(p)
    assert "line 2" in msg and "'text'" in msg and "int" in msg


def test_missing_column(tmp_path: Path):
    p = tmp_path / "c.csv"
    p.write_text("body\nhello\n")
    assert "missing column 'text'" in _err(p, required=["text"])


def test_truncated_parquet(tmp_path: Path):
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["a" * 100] * 50}), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    assert "not a readable Parquet file" in _err(p)


def test_parquet_wrong_type(tmp_path: Path):
    p = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), p)
    assert "'text' has type int64" in _err(p)


def test_bad_provenance_value_names_row(tmp_path: Path):
    t = text_records(["a", "b"])
    rows = t.to_pylist()
    rows[1]["origin"] = "alien"
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    assert "row 1: field 'origin'" in _err(p)


def test_huge_record(tmp_path: Path):
    from synthloop.records.io import read_jsonl

    p = tmp_path / "h.jsonl"
    p.write_text(json.dumps({"text": "x" * 5000}) + "\n")
    with pytest.raises(InputError, match="line 1: record is"):
        read_jsonl(p, max_record_bytes=1000)


def test_missing_and_unknown(tmp_path: Path):
    assert "no such file" in _err(tmp_path / "nope.jsonl")
    p = tmp_path / "x.xlsx"
    p.write_text("?")
    assert "unknown format" in _err(p)


def test_empty_corpus_folder(tmp_path: Path):
    with pytest.raises(InputError, match="no files matching"):
        read_text_corpus(tmp_path)
