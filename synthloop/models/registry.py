"""Turn a model spec (``tiny``, ``smollm2-135m``, a folder) into a :class:`LanguageModel`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from synthloop.errors import ConfigError, ModelNotFoundError
from synthloop.models.gpt import SIZES
from synthloop.models.lm import LanguageModel, TinyLM
from synthloop.models.tokenizer import BPETokenizer

EMBEDDED = ("smollm2-135m",)


def is_from_scratch(spec: str) -> bool:
    """True when ``spec`` names a from-scratch size (trained on the corpus, tokenizer too)."""
    return spec in SIZES


def load_lm(spec: str, *, device: str | torch.device = "cpu",
            corpus: Sequence[str] | None = None, vocab_size: int = 1024, max_len: int = 160,
            seed: int = 0) -> LanguageModel:
    """Load or create a model.

    Args:
        spec: a from-scratch size (``tiny``, ``small``, ``gpt-125m``), ``smollm2-135m`` (the
            embedded pretrained model), or a local folder (one saved by synthloop, or any HF
            causal-LM folder).
        corpus: texts to train the tokenizer of a from-scratch model on.
        vocab_size, max_len: tokenizer size and positions of a from-scratch model.
        seed: initialisation seed of a from-scratch model.
    """
    if is_from_scratch(spec):
        if not corpus:
            raise ConfigError(f"model '{spec}' is trained from scratch and needs a corpus")
        tok = BPETokenizer.train(corpus, vocab_size=vocab_size)
        return TinyLM.create(tok, size=spec, max_len=max_len, seed=seed, device=device)
    if spec == "smollm2-135m":
        from synthloop.models.hf import HFLM

        return HFLM.smollm2(device=device)
    p = Path(spec)
    if p.is_dir():
        cfg = p / "config.json"
        if cfg.is_file():
            try:
                kind = json.loads(cfg.read_text()).get("kind")
            except json.JSONDecodeError as e:
                raise ModelNotFoundError(f"{cfg}: invalid JSON ({e.msg})") from None
            if kind == TinyLM.KIND:
                return TinyLM.load(p, device=device)
        from synthloop.models.hf import HFLM

        return HFLM.from_pretrained(p, device=device)
    raise ModelNotFoundError(
        f"model '{spec}' not found: use one of {', '.join(list(SIZES) + list(EMBEDDED))} "
        f"or a local model folder")
