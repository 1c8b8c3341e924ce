"""Poisoning scan: backdoor triggers, gibberish continuations, label flips, injection campaigns.

    from synthloop.poison import scan
    result = scan(texts)            # or scan(responses, prompts=prompts)
    result.triggers, result.flagged, result.reasons

    from synthloop.poison import scan_dataset, write_quarantine
    records, result = scan_dataset("data.jsonl")          # what `synthloop poison scan` runs
    write_quarantine(records, result, "quarantine/")
"""

from synthloop.poison.dataset import scan_dataset, write_quarantine
from synthloop.poison.scan import ScanConfig, ScanResult, scan

__all__ = ["ScanConfig", "ScanResult", "scan", "scan_dataset", "write_quarantine"]
