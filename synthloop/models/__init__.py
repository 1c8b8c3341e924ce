"""Model layer: the LM interface, from-scratch GPTs, the embedded SmolLM2, decoding, training.

The parameters (:mod:`synthloop.models.params`) import nothing heavy; the model classes pull in
torch and are imported on first use of their names here (PEP 562), so that code needing only
``GenParams`` — a table generator, the CLI — does not pay torch's import time (≈ 4 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from synthloop.models.params import GenParams, TrainParams

if TYPE_CHECKING:
    from synthloop.models.lm import LanguageModel, TinyLM, resolve_device
    from synthloop.models.registry import load_lm
    from synthloop.models.tokenizer import BPETokenizer

_LAZY = {"LanguageModel": "synthloop.models.lm", "TinyLM": "synthloop.models.lm",
         "resolve_device": "synthloop.models.lm", "load_lm": "synthloop.models.registry",
         "BPETokenizer": "synthloop.models.tokenizer"}

__all__ = ["BPETokenizer", "GenParams", "LanguageModel", "TinyLM", "TrainParams", "load_lm",
           "resolve_device"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthloop.models' has no attribute '{name}'")
