"""A small decoder-only transformer (GPT-style).

Sizes run from ~1M parameters (CPU experiments in minutes) to ~125M (the lent-GPU stand-in for
OPT-125m / SmolLM2-135M). Pre-norm blocks, learned positions, tied embeddings, and PyTorch's
fused scaled-dot-product attention.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import Field, model_validator

from synthloop.configs import Config


class GPTConfig(Config):
    """Shape of a from-scratch decoder-only transformer: ``vocab_size`` tokens, ``n_layer``
    blocks of ``n_head`` heads over ``d_model`` dimensions (a multiple of ``n_head``),
    ``max_len`` positions, ``dropout`` in [0, 1)."""

    vocab_size: int = Field(ge=2)
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    d_model: int = Field(128, ge=1)
    max_len: int = Field(160, ge=2)
    dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide(self) -> GPTConfig:
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_head "
                             f"({self.n_head})")
        return self


#: Named sizes. ``tiny`` trains at ~17k tokens/s on 2 CPU cores; ``gpt-125m`` is for a GPU.
SIZES: dict[str, dict] = {
    "tiny": {"n_layer": 3, "n_head": 4, "d_model": 64},
    "small": {"n_layer": 4, "n_head": 4, "d_model": 256},
    "gpt-30m": {"n_layer": 8, "n_head": 8, "d_model": 512},
    "gpt-125m": {"n_layer": 12, "n_head": 12, "d_model": 768},
}


class _Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        d = cfg.d_model
        self.n_head = cfg.n_head
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_head, d // self.n_head) \
            .permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           is_causal=attn_mask is None)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    """Decoder-only transformer. ``forward(idx)`` returns logits ``[batch, time, vocab]``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
        self.ln = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)
        # GPT-2's scaled init of residual projections keeps early training stable with depth.
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "out.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every position (training and scoring; generation runs on the engine,
        :mod:`synthloop.models.engine`, which reads these weights)."""
        t = idx.shape[1]
        if t > self.cfg.max_len:
            raise ValueError(f"sequence of {t} tokens exceeds the model's "
                             f"{self.cfg.max_len} positions")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.ln(x) @ self.tok.weight.T
