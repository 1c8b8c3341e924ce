"""Parameters of training and decoding, shared by every LM backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TrainParams:
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

    epochs: float = 2.0
    batch_size: int = 32
    seq_len: int = 130
    lr: float = 2e-3
    warmup: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_steps: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenParams:
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

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_beams: int = 1
    repetition_penalty: float = 1.0
    batch_size: int = 256
    stop_at_eos: bool = False
    greedy: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        from synthloop.errors import ConfigError

        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be ≥ 1")
        if self.temperature <= 0:
            raise ConfigError("temperature must be > 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p must be in (0, 1]")
        if self.num_beams < 1 or self.top_k < 0 or self.batch_size < 1:
            raise ConfigError("num_beams and batch_size must be ≥ 1, top_k ≥ 0")
        if self.repetition_penalty < 1:
            raise ConfigError("repetition_penalty must be ≥ 1")
        if self.greedy and self.num_beams > 1:
            raise ConfigError("greedy decoding and beam search exclude each other")
