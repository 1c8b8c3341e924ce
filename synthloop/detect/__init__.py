"""Zero-shot detection of unmarked AI-generated text (Fast-DetectGPT and a likelihood
baseline) with calibrated thresholds and dataset-level AI-share estimates."""

from synthloop.detect.detector import (
    Calibration,
    Detector,
    calibrate,
    domain_share_estimates,
    estimate_share,
    shipped_calibration,
)

__all__ = ["Calibration", "Detector", "calibrate", "domain_share_estimates", "estimate_share",
           "shipped_calibration"]
