"""Parameters of training and decoding, shared by every LM backend.

:class:`GenParams` is the one decoding model: the engine, the transformers fallback, the
collapse lab, the pipeline's generation steps (their ``sampling:`` block in YAML), the judge,
self-play and ``synthloop serve`` all take it. Each caller may set its own defaults (the
pipeline's generation steps sample at temperature 0.8, top-p 0.95 and stop at EOS); a partial
YAML block overrides only the fields it names.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from synthloop.configs import Config


class TrainParams(Config):
    """How to train or fine-tune.

    Attributes:
        epochs: passes over the training records (may be fractional).
        batch_size: sequences per optimiser step.
        seq_len: tokens per packed training sequence.
        lr: peak learning rate (AdamW), reached after ``warmup`` of the steps, then cosine
            decay to 10% of it.
        warmup: fraction of steps spent warming up, in [0, 1).
        weight_decay: AdamW weight decay.
        grad_clip: gradient-norm clip.
        max_steps: cap on optimiser steps (``None``: no cap).
    """

    epochs: float = Field(2.0, gt=0)
    batch_size: int = Field(32, ge=1)
    seq_len: int = Field(130, ge=2)
    lr: float = Field(2e-3, gt=0)
    warmup: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)


class GenParams(Config):
    """How to decode.

    Attributes:
        max_new_tokens: tokens to write after each prompt (always written in full: the
            collapse protocol asks for fixed-length continuations).
        temperature: softmax temperature (> 0); ignored by beam search.
        top_p: nucleus sampling mass in (0, 1]; 1 disables it.
        top_k: keep only the k most likely tokens (0 disables it).
        num_beams: > 1 runs beam search (deterministic) instead of sampling.
        repetition_penalty: ≥ 1; divides positive logits (multiplies negative ones) of tokens
            already in the sequence, as Hugging Face does. 1 disables it.
        batch_size: prompts decoded together.
        stop_at_eos: end each continuation at the model's end-of-sequence token (then
            ``max_new_tokens`` is a cap). Off by default: the collapse protocol writes
            fixed-length continuations and bans EOS.
        greedy: always take the most likely token (temperature, top-k and top-p are then
            ignored, as in transformers with ``do_sample=False``).
    """

    max_new_tokens: int = Field(64, ge=1, le=32768)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    num_beams: int = Field(1, ge=1)
    repetition_penalty: float = Field(1.0, ge=1)
    batch_size: int = Field(256, ge=1)
    stop_at_eos: bool = False
    greedy: bool = False

    @model_validator(mode="after")
    def _one_search(self) -> GenParams:
        if self.greedy and self.num_beams > 1:
            raise ValueError("greedy decoding and beam search exclude each other "
                             "(greedy: true with num_beams > 1)")
        return self
