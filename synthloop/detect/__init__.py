"""Zero-shot detection of unmarked AI-generated text (Fast-DetectGPT and a likelihood
baseline) with calibrated thresholds and dataset-level AI-share estimates."""

from synthloop.detect.dataset import DetectionReport, detect_dataset
from synthloop.detect.detector import (
    Calibration,
    Detector,
    calibrate,
    domain_share_estimates,
    estimate_share,
    shipped_calibration,
)

__all__ = ["Calibration", "DetectionReport", "Detector", "calibrate", "detect_dataset",
           "domain_share_estimates", "estimate_share", "shipped_calibration"]
