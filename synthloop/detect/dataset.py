"""Detection over a dataset: what ``synthloop detect`` does, as one call."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from synthloop.detect.detector import (
    Calibration,
    Detector,
    calibrate,
    estimate_share,
    shipped_calibration,
)
from synthloop.errors import ConfigError
from synthloop.progress import NullProgress, Progress
from synthloop.records.io import TEXT_SUFFIXES, load_texts, read_records


@dataclass
class DetectionReport:
    """Scores, verdicts and the share estimate of one dataset.

    Attributes:
        scores: one per text (higher = more likely AI-generated; NaN when nothing was scored).
        tokens: tokens scored per text. verdicts: score above the calibration's threshold.
        share: :func:`~synthloop.detect.estimate_share`'s dict (n, flagged, share, low, high).
    """

    method: str
    model: str
    calibration: Calibration
    texts: list[str]
    scores: np.ndarray
    tokens: np.ndarray
    verdicts: list[bool] = field(default_factory=list)
    share: dict = field(default_factory=dict)

    @property
    def detector(self) -> str:
        c = self.calibration
        return f"{self.method}@{self.model} fpr={c.fpr} threshold={c.threshold:.4f}"

    def to_dict(self) -> dict:
        """JSON-ready: method, model, calibration, share and one entry per record."""
        records = [{"index": i, "score": float(s) if math.isfinite(s) else None,
                    "tokens": int(t), "ai_generated": v}
                   for i, (s, t, v) in enumerate(zip(self.scores, self.tokens, self.verdicts,
                                                     strict=True))]
        return {"method": self.method, "model": self.model,
                "calibration": self.calibration.to_dict(), "share": self.share,
                "records": records}

    def scored_records(self, data: str | Path, text_field: str = "text") -> pa.Table:
        """The dataset's records with ``ai_score``, ``ai_generated`` and ``ai_detector``
        columns (plain-text input: one record per paragraph)."""
        p = Path(data)
        if p.suffix.lower() in TEXT_SUFFIXES or p.is_dir():
            table = pa.table({"text": self.texts})
        else:
            table = read_records(p, text_column=text_field)
        table = table.append_column("ai_score", pa.array(
            [float(x) if np.isfinite(x) else None for x in self.scores], pa.float64()))
        table = table.append_column("ai_generated", pa.array(self.verdicts, pa.bool_()))
        return table.append_column("ai_detector", pa.array([self.detector] * len(self.texts)))


def detect_dataset(data: str | Path, *, fpr: float = 0.01, human: str | Path | None = None,
                   method: str = "fast-detectgpt", model: str = "smollm2-135m",
                   max_tokens: int = 256, text_field: str = "text", device: str = "cpu",
                   progress: Progress | None = None) -> DetectionReport:
    """Score every record of ``data`` and estimate its AI-generated share.

    Args:
        fpr: false-positive rate on human text, in (0, 1).
        human: human text of the data's own domain to calibrate on (≥ 10 records); without
            it the shipped calibration (SmolLM2, 19th-century novels) is used.
        method: ``fast-detectgpt`` or ``likelihood``. max_tokens: tokens scored per record.
    """
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    texts = load_texts(data, text_field=text_field)
    human_texts = load_texts(human, text_field=text_field) if human else None
    if human_texts is None and model != "smollm2-135m":
        raise ConfigError("the shipped calibration is for smollm2-135m; give human text "
                          "(human) to calibrate another model", fields=("human",))
    det = Detector(model, method=method, max_tokens=max_tokens, device=device)
    progress = progress or NullProgress()
    progress.stage(f"scoring {len(texts)} records with {method} under {model}", len(texts))
    scores, n_tok = det.score(texts, progress=progress.advance)
    if human_texts is not None:
        h, _ = det.score(human_texts)
        cal = calibrate(h, fpr, method=method, model=model, length=max_tokens,
                        source=f"human text {human}")
    else:
        median_len = int(np.median(n_tok)) if len(n_tok) else max_tokens
        cal = shipped_calibration(method, fpr, median_len)
    verdicts = [bool(s > cal.threshold) for s in scores]
    return DetectionReport(method, model, cal, texts, scores, n_tok, verdicts,
                           estimate_share(verdicts, cal))
