"""Model layer: the LM interface, from-scratch GPTs, the embedded SmolLM2, decoding, training."""

from synthloop.models.lm import LanguageModel, TinyLM, resolve_device
from synthloop.models.params import GenParams, TrainParams
from synthloop.models.registry import load_lm
from synthloop.models.tokenizer import BPETokenizer

__all__ = ["BPETokenizer", "GenParams", "LanguageModel", "TinyLM", "TrainParams", "load_lm",
           "resolve_device"]
