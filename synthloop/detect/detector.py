"""Zero-shot detection of unmarked AI-generated text: scores, calibrated verdicts, and the
estimated AI-generated share of a dataset with a confidence interval.

Thresholds are calibrated on human text for a stated false-positive rate. The shipped
calibration (``calibration_smollm2.json``) was measured by ``benchmarks/bench_detect.py`` on
held-out windows of 19th-century English novels; pass your own human text (``--human``) to
calibrate for another domain — the false-positive rate only holds on text like the text it was
calibrated on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources

import numpy as np

from synthloop.detect.scores import METHODS, token_stats
from synthloop.errors import ConfigError
from synthloop.measures.intervals import wilson
from synthloop.progress import Advance

DEFAULT_MODEL = "smollm2-135m"


@dataclass
class Calibration:
    """A score threshold for one method, model and document length.

    Attributes:
        method, model: how scores were computed.
        fpr: target false-positive rate on human text; ``threshold`` is the human scores'
            (1 - fpr) quantile, so a score above it is called AI-generated.
        tpr: share of AI-generated calibration texts above the threshold (None if no AI
            texts were given); the share estimate needs it.
        n_human, n_ai: calibration set sizes; ``source`` says where they came from.
        length: tokens scored per calibration document.
    """

    method: str
    model: str
    fpr: float
    threshold: float
    tpr: float | None
    n_human: int
    n_ai: int
    length: int
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(human_scores: Sequence[float], fpr: float, *, ai_scores: Sequence[float] = (),
              method: str, model: str, length: int, source: str) -> Calibration:
    """Threshold at the (1 - ``fpr``) quantile of ``human_scores``; TPR from ``ai_scores``."""
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    h = np.asarray([x for x in human_scores if math.isfinite(x)], dtype=float)
    if len(h) < 10:
        raise ConfigError(f"calibration needs at least 10 human texts, got {len(h)}")
    thr = float(np.quantile(h, 1 - fpr, method="higher"))
    a = np.asarray([x for x in ai_scores if math.isfinite(x)], dtype=float)
    tpr = float((a > thr).mean()) if len(a) else None
    return Calibration(method, model, fpr, thr, tpr, len(h), len(a), length, source)


def shipped_calibration(method: str, fpr: float, length: int) -> Calibration:
    """The calibration measured by benchmarks/bench_detect.py for SmolLM2-135M: the entry with
    this method and fpr whose length is closest to ``length`` (from below when possible)."""
    data = json.loads(resources.files("synthloop.detect").joinpath(
        "calibration_smollm2.json").read_text(encoding="utf-8"))
    entries = [Calibration(**e) for e in data["calibrations"]
               if e["method"] == method and abs(e["fpr"] - fpr) < 1e-12]
    if not entries:
        fprs = sorted({e["fpr"] for e in data["calibrations"] if e["method"] == method})
        raise ConfigError(f"no shipped calibration for method '{method}' at fpr {fpr} "
                          f"(shipped: {fprs}); calibrate on your own human text (human)",
                          fields=("human",))
    below = [e for e in entries if e.length <= length]
    pool = below or entries
    return min(pool, key=lambda e: abs(e.length - length))


def estimate_share(verdicts: Sequence[bool], calibration: Calibration, *,
                   confidence: float = 0.95) -> dict[str, float | int | None]:
    """Estimated AI-generated share of a dataset from its verdicts.

    The flagged rate r mixes true and false positives: E[r] = π·TPR + (1 - π)·FPR, so
    π = (r - FPR) / (TPR - FPR) (Rogan & Gladen 1978), clipped to [0, 1]. The interval maps
    the Wilson interval of r the same way (the calibration's own error is not included).
    """
    n = len(verdicts)
    k = int(np.sum(verdicts))
    out: dict[str, float | int | None] = {"n": n, "flagged": k, "flagged_rate": k / n if n else
                                          None, "share": None, "low": None, "high": None,
                                          "confidence": confidence}
    if not n:
        return out
    r = k / n
    interval = wilson(k, n, float(_normal_quantile(0.5 + confidence / 2)))
    tpr, fpr = calibration.tpr, calibration.fpr
    if tpr is None or tpr <= fpr:
        return out  # without a true-positive rate the flagged rate is all we can say

    def correct(x: float) -> float:
        return float(min(1.0, max(0.0, (x - fpr) / (tpr - fpr))))

    out.update(share=correct(r), low=correct(interval.low), high=correct(interval.high))
    return out


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


class Detector:
    """Scores texts with a zero-shot method under a reference LM.

    Args:
        model: reference LM spec (default: the embedded SmolLM2-135M) or a loaded
            :class:`~synthloop.models.lm.LanguageModel`.
        method: ``fast-detectgpt`` (default) or ``likelihood`` (the perplexity baseline).
        max_tokens: tokens scored per text (its first ones).
        device: where the LM runs.
    """

    def __init__(self, model=DEFAULT_MODEL, *, method: str = "fast-detectgpt",
                 max_tokens: int = 256, device: str = "cpu"):
        if method not in METHODS:
            raise ConfigError(f"unknown method '{method}' (expected one of "
                              f"{', '.join(METHODS)})")
        if max_tokens < 1:
            raise ConfigError("max_tokens must be ≥ 1")
        if isinstance(model, str):
            from synthloop.models.registry import load_lm

            self.model_name = model
            self.lm = load_lm(model, device=device)
        else:
            self.model_name = getattr(model, "name", type(model).__name__)
            self.lm = model
        self.method = method
        self.max_tokens = max_tokens

    def score(self, texts: Sequence[str], *, progress: Advance | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """(score per text — higher = more likely AI-generated —, tokens scored per text)."""
        stats = token_stats(self.lm, texts, max_tokens=self.max_tokens, progress=progress)
        fn = METHODS[self.method]
        return (np.array([fn(s) for s in stats]), np.array([s.n_tokens for s in stats]))


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p)."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p)) if k > 0 else 1.0


def _more_flagged(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided Fisher exact p-value that sample 1 is flagged more often than sample 2."""
    from scipy.stats import fisher_exact

    if n1 == 0 or n2 == 0:
        return 1.0
    return float(fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="greater")[1])


def domain_share_estimates(reference: Sequence[float], samples: dict[str, Sequence[float]],
                           shipped: Calibration, *, min_reference: int = 50,
                           domain_alpha: float = 0.001,
                           confidence: float = 0.95) -> dict:
    """AI-share estimates that hold on the user's own domain, not only the calibration's.

    ``reference`` are detector scores of text the user says is human (their real data);
    ``samples`` the scores of the sets to estimate (e.g. synthetic, holdout).

    1. If the reference is flagged at the shipped threshold no more often than the shipped
       false-positive rate allows (one-sided binomial test at ``domain_alpha``), the text is
       in the calibration's domain and the shipped calibration is used.
    2. Otherwise the threshold is recalibrated at the reference's own (1 - fpr) quantile —
       with at least ``min_reference`` reference texts; with fewer the estimate abstains
       (``share`` None). The true-positive rate is then the shipped one, an assumption said
       in ``domain``.

    Every sample also gets ``more_flagged_than_reference_p``: the one-sided Fisher exact
    p-value that it is flagged more often than the reference under the same threshold — the
    evidence a warning about a set that should be human needs (a set drawn like the
    reference is above it by chance only at that rate).
    """
    ref = np.asarray([x for x in reference if math.isfinite(x)], dtype=float)
    k_ref = int((ref > shipped.threshold).sum())
    p_domain = _binom_sf(k_ref, len(ref), shipped.fpr) if len(ref) else 1.0
    out: dict = {"reference": {"n": len(ref), "flagged_at_shipped": k_ref,
                               "p_in_shipped_domain": p_domain}}
    if len(ref) and p_domain >= domain_alpha:
        cal, domain = shipped, "shipped"
    elif len(ref) >= min_reference:
        thr = float(np.quantile(ref, 1 - shipped.fpr, method="higher"))
        cal = Calibration(shipped.method, shipped.model, shipped.fpr, thr, shipped.tpr,
                          len(ref), 0, shipped.length, "the real data (recalibrated)")
        domain = (f"outside the shipped calibration ({k_ref} of {len(ref)} real texts flagged "
                  f"at its {shipped.fpr:.0%} threshold): threshold recalibrated on the real "
                  f"data; the share assumes the shipped true-positive rate")
    else:
        cal, domain = None, (f"abstained: the real data looks unlike the calibration's domain "
                             f"and {len(ref)} texts are too few to recalibrate "
                             f"(need {min_reference})")
    out["domain"], out["calibration"] = domain, cal.to_dict() if cal else None
    k_ref_cal = int((ref > cal.threshold).sum()) if cal else 0
    for name, scores in samples.items():
        s = np.asarray([x for x in scores if math.isfinite(x)], dtype=float)
        if cal is None:
            out[name] = {"n": len(s), "share": None, "low": None, "high": None}
            continue
        verdicts = list(s > cal.threshold)
        est = estimate_share(verdicts, cal, confidence=confidence)
        est["more_flagged_than_reference_p"] = _more_flagged(int(sum(verdicts)), len(s),
                                                             k_ref_cal, len(ref))
        out[name] = est
    return out
