"""A small decoder-only transformer (GPT-style) with a pre-allocated KV cache.

Sizes run from ~1M parameters (CPU experiments in minutes) to ~125M (the lent-GPU stand-in for
OPT-125m / SmolLM2-135M). Pre-norm blocks, learned positions, tied embeddings, and PyTorch's
fused scaled-dot-product attention.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    max_len: int = 160
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


#: Named sizes. ``tiny`` trains at ~17k tokens/s on 2 CPU cores; ``gpt-125m`` is for a GPU.
SIZES: dict[str, dict] = {
    "tiny": {"n_layer": 3, "n_head": 4, "d_model": 64},
    "small": {"n_layer": 4, "n_head": 4, "d_model": 256},
    "gpt-30m": {"n_layer": 8, "n_head": 8, "d_model": 512},
    "gpt-125m": {"n_layer": 12, "n_head": 12, "d_model": 768},
}


class KVCache:
    """Keys and values of every layer for ``batch`` sequences up to ``max_len`` positions."""

    def __init__(self, cfg: GPTConfig, batch: int, max_len: int, device, dtype):
        shape = (cfg.n_layer, batch, cfg.n_head, max_len, cfg.d_model // cfg.n_head)
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0

    def reorder(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` of the batch (beam search)."""
        self.k = self.k.index_select(1, index)
        self.v = self.v.index_select(1, index)


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

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int,
                attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_head, d // self.n_head) \
            .permute(2, 0, 3, 1, 4)
        if cache is None:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                               is_causal=attn_mask is None)
        else:
            start = cache.length
            cache.k[layer, :, :, start:start + t] = k
            cache.v[layer, :, :, start:start + t] = v
            keys = cache.k[layer, :, :, :start + t]
            vals = cache.v[layer, :, :, :start + t]
            if t == 1:
                # One query: two small batched matmuls beat the fused kernel's setup cost.
                w = (q @ keys.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
                a = w.softmax(-1) @ vals
            else:
                mask = torch.ones(t, start + t, dtype=torch.bool, device=x.device) \
                    .tril(diagonal=start)
                a = F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask)
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

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        p = next(self.parameters())
        dtype = torch.bfloat16 if p.device.type == "cuda" else p.dtype
        return KVCache(self.cfg, batch, max_len or self.cfg.max_len, p.device, dtype)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        t = idx.shape[1]
        start = cache.length if cache is not None else 0
        if start + t > self.cfg.max_len:
            raise ValueError(f"sequence of {start + t} tokens exceeds the model's "
                             f"{self.cfg.max_len} positions")
        pos = torch.arange(start, start + t, device=idx.device)
        x = self.tok(idx) + self.pos(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, attn_mask)
        if cache is not None:
            cache.length = start + t
        return self.ln(x) @ self.tok.weight.T
