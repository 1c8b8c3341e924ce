"""Watermark radioactivity: a student trained on watermarked synthetic data carries the key's
watermark in its own output; one trained on unmarked data does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import austen

from synthloop.collapse import CollapseConfig
from synthloop.collapse.radioactivity import run_radioactivity, summarise_radioactivity
from synthloop.compliance.watermark import GreenList
from synthloop.errors import ConfigError
from synthloop.models.params import GenParams, TrainParams


def _cfg(tmp_path: Path) -> CollapseConfig:
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "a.txt").write_text(austen("persuasion")[:120000], encoding="utf-8")
    return CollapseConfig(corpus=str(corpus), out=str(tmp_path / "run"), generations=1,
                          policies="replace", seeds=1, block_tokens=48, prompt_tokens=16,
                          new_tokens=48, max_train_blocks=200, max_test_blocks=100,
                          vocab_size=500,
                          train=TrainParams(epochs=3, batch_size=8, seq_len=64, lr=3e-3),
                          decoding=GenParams(batch_size=64))


def test_watermarked_training_data_is_detected_in_the_student(tmp_path):
    rows = run_radioactivity(_cfg(tmp_path), shares=(0.0, 1.0))
    by = {r["share"]: r for r in rows}
    assert by[1.0]["watermarked_records"] == by[1.0]["records"] == 200
    assert by[0.0]["watermarked_records"] == 0
    # the teacher's own watermarked text: overwhelming
    assert by[1.0]["teacher_z"] > 10
    # the student never saw the key, yet its output is green against real text's share...
    assert by[1.0]["z_vs_real"] > 4 and by[1.0]["p_vs_real"] < 1e-4
    # ... and the control student's is not
    assert abs(by[0.0]["z_vs_real"]) < 3 and by[0.0]["p_vs_real"] > 0.01
    summary = summarise_radioactivity(rows)
    assert [s["share"] for s in summary] == [0.0, 1.0]
    with pytest.raises(ConfigError, match="shares"):
        run_radioactivity(_cfg(tmp_path), shares=(1.5,))


def test_pooled_scoring_counts_each_window_once():
    green = GreenList(b"0123456789abcdef-key", 300)
    seq = list(range(20))
    one = green.score_many([seq])
    assert green.score_many([seq, seq]) == one  # a repeated text adds no evidence
    assert one == green.score_ids(seq) and one["tokens_scored"] == 16
