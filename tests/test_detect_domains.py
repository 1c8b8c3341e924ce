"""AI-share estimates and the holdout warning on human text of other domains than the
calibration's: recalibrated on the user's real data, abstaining when it is too small, and
warning only when the holdout is flagged more than the rest of the real data."""

from __future__ import annotations

import numpy as np

from synthloop.audit.base import MetricResult
from synthloop.audit.warnings import warnings_for
from synthloop.detect import Calibration, domain_share_estimates

SHIPPED = Calibration("fast-detectgpt", "smollm2-135m", 0.01, threshold=0.0, tpr=0.6,
                      n_human=100, n_ai=100, length=64, source="test")


def _warns(est: dict) -> bool:
    m = MetricResult(name="ai_share", prop="provenance", value=est["synthetic"]["share"],
                     baseline=est["holdout"]["share"], direction="target", range=(0, 1),
                     score=None, description="", breakdown=est)
    return any(w.metric == "ai_share" for w in warnings_for([m]))


def test_in_domain_text_uses_the_shipped_calibration():
    rng = np.random.default_rng(0)
    human = rng.normal(-2.5, 1.0, 400)  # ~0.6% above the shipped threshold 0
    est = domain_share_estimates(human[:200], {"holdout": human[200:],
                                               "synthetic": rng.normal(0.5, 1, 200)}, SHIPPED)
    assert est["domain"] == "shipped" and est["calibration"]["threshold"] == 0.0
    assert est["synthetic"]["share"] > 0.5 and est["holdout"]["low"] == 0.0


def test_off_domain_human_text_raises_no_false_alarm():
    # short quotes: human text the shipped threshold flags 20% of the time
    rng = np.random.default_rng(1)
    fired_old = fired_new = 0
    for _ in range(200):
        real = rng.normal(-0.85, 1.0, 200)
        holdout = rng.normal(-0.85, 1.0, 100)
        est = domain_share_estimates(real, {"holdout": holdout, "synthetic": holdout}, SHIPPED)
        assert est["domain"].startswith("outside the shipped calibration")
        fired_new += _warns(est)
        # what the shipped calibration alone said
        r = float((holdout > 0).mean())
        fired_old += (r - 0.01) / (0.6 - 0.01) > 0.05
    assert fired_old > 150  # the old rule alarms on nearly every clean holdout
    assert fired_new <= 4  # ≤ 2% of clean holdouts (one-sided p < 0.01, plus share > 5%)


def test_a_contaminated_holdout_is_still_found_off_domain():
    rng = np.random.default_rng(2)
    real = rng.normal(-0.85, 1.0, 300)
    holdout = np.concatenate([rng.normal(-0.85, 1.0, 70), rng.normal(3.0, 0.5, 30)])
    est = domain_share_estimates(real, {"holdout": holdout, "synthetic": holdout}, SHIPPED)
    assert est["holdout"]["more_flagged_than_reference_p"] < 1e-6
    assert _warns(est)


def test_too_little_off_domain_real_data_abstains():
    rng = np.random.default_rng(3)
    real = rng.normal(0.0, 1.0, 20)  # half flagged: surely not the shipped domain
    est = domain_share_estimates(real, {"holdout": real, "synthetic": real}, SHIPPED)
    assert est["domain"].startswith("abstained") and est["synthetic"]["share"] is None
    assert not _warns(est)
