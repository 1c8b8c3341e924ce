"""synthloop: train on synthetic data without collapse."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``synthloop.audit(...)`` without importing the audit's dependencies at package import
    if name == "audit":
        return importlib.import_module("synthloop.audit")
    raise AttributeError(f"module 'synthloop' has no attribute '{name}'")
