"""Poisoning scan: backdoor triggers, gibberish continuations, label flips, injection campaigns.

    from synthloop.poison import scan
    result = scan(texts)            # or scan(responses, prompts=prompts)
    result.triggers, result.flagged, result.reasons
"""

from synthloop.poison.scan import ScanConfig, ScanResult, scan

__all__ = ["ScanConfig", "ScanResult", "scan"]
