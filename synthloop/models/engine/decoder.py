"""A decoder-only transformer forward pass over a static cache, for the models the engine
knows: synthloop's GPT and the Llama family of ``transformers`` (Llama, Mistral, Qwen2 —
SmolLM2 is a Llama).

The engine reads the model's own weights (fusing q/k/v and gate/up projections into one
matrix each, so a step runs fewer, larger matmuls) and never changes them. Every row carries
its own positions, so sequences of different lengths decode side by side without padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LLAMA_FAMILY = ("llama", "mistral", "qwen2")
#: RoPE variants whose frequencies depend on the current length (the engine's table is fixed).
STATIC_ROPE_UNSUPPORTED = ("dynamic", "longrope")


def cpu_packing_available() -> bool:
    """True when oneDNN can pre-pack linear weights on this CPU build of torch."""
    return torch.backends.mkldnn.is_available() and \
        hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


class Linear:
    """``x @ w.T + b``. On CPU the weight can be pre-packed once into oneDNN's blocked layout
    (the path torch.compile's CPU freezing takes): at decode batch sizes a plain matmul
    re-blocks the weight on every call, which costs as much as the product itself."""

    __slots__ = ("w", "b", "packed")

    def __init__(self, w: torch.Tensor, b: torch.Tensor | None):
        self.w, self.b = w, b
        self.packed: torch.Tensor | None = None

    def pack(self, batch_hint: int) -> None:
        try:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(self.w, batch_hint)
        except RuntimeError:  # a build or dtype oneDNN cannot pack: stay on F.linear
            self.packed = None

    def to(self, dtype: torch.dtype) -> Linear:
        return Linear(self.w.to(dtype), None if self.b is None else self.b.to(dtype))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is None:
            return F.linear(x, self.w, self.b)
        lead = x.shape[:-1]
        y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.packed,
                                               self.b, "none", [], "")
        return y.view(*lead, y.shape[-1])


@dataclass
class _Layer:
    n1_w: torch.Tensor
    n1_b: torch.Tensor | None
    qkv: Linear
    o: Linear
    n2_w: torch.Tensor
    n2_b: torch.Tensor | None
    up: Linear        # gelu: fc; swiglu: [gate; up]
    down: Linear

    def linears(self) -> tuple[Linear, ...]:
        return (self.qkv, self.o, self.up, self.down)

    def to(self, dtype: torch.dtype) -> _Layer:
        def c(t):
            return None if t is None else t.to(dtype)

        return _Layer(c(self.n1_w), c(self.n1_b), self.qkv.to(dtype), self.o.to(dtype),
                      c(self.n2_w), c(self.n2_b), self.up.to(dtype), self.down.to(dtype))


def _cat(*ts: torch.Tensor | None) -> torch.Tensor | None:
    if all(t is None for t in ts):
        return None
    return torch.cat([t for t in ts if t is not None]).detach()


def _d(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def _lin(mod) -> Linear:
    return Linear(mod.weight.detach(), _d(mod.bias))


class Decoder:
    """Weights and forward pass of one model, in the engine's layout.

    Build with :meth:`from_module`; :func:`supports` says whether a module can be.
    """

    def __init__(self, *, layers: list[_Layer], embed: torch.Tensor, head: Linear,
                 final_w: torch.Tensor, final_b: torch.Tensor | None, n_head: int,
                 n_kv_head: int, head_dim: int, max_positions: int, norm: str, eps: float,
                 mlp: str, pos_embed: torch.Tensor | None = None,
                 rope: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.layers = layers
        self.embed = embed
        self.head = head
        self.final_w, self.final_b = final_w, final_b
        self.n_layer = len(layers)
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.max_positions = max_positions
        self.norm, self.eps, self.mlp = norm, eps, mlp
        self.pos_embed = pos_embed
        self.rope = rope
        self.vocab = head.w.shape[0]
        self.device = embed.device
        self.dtype = embed.dtype

    # ---- construction -------------------------------------------------------------------

    @staticmethod
    def supports(module: torch.nn.Module) -> bool:
        """True for synthloop's GPT and for transformers Llama/Mistral/Qwen2 causal LMs
        without sliding-window attention."""
        from synthloop.models.gpt import GPT

        if isinstance(module, GPT):
            return True
        cfg = getattr(module, "config", None)
        if cfg is None or getattr(cfg, "model_type", None) not in LLAMA_FAMILY:
            return False
        if getattr(cfg, "use_sliding_window", False) or (
                cfg.model_type == "mistral" and getattr(cfg, "sliding_window", None)):
            return False
        rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
        if rope.get("rope_type", rope.get("type", "default")) in STATIC_ROPE_UNSUPPORTED:
            return False  # frequencies that change with the sequence length
        act = getattr(cfg, "hidden_act", "silu")
        return act == "silu" and hasattr(getattr(module, "model", None), "rotary_emb")

    @classmethod
    def from_module(cls, module: torch.nn.Module, dtype: torch.dtype | None = None) -> Decoder:
        """The engine's view of ``module``'s current weights (cast to ``dtype`` if given)."""
        from synthloop.models.gpt import GPT

        with torch.no_grad():
            dec = cls._from_gpt(module) if isinstance(module, GPT) else cls._from_llama(module)
        if dtype is not None and dtype != dec.dtype:
            dec = dec.to(dtype)
        if dec.device.type == "cpu" and cpu_packing_available():
            dec.pack()
        return dec

    def pack(self, batch_hint: int = 16) -> None:
        """Pre-pack every weight matrix for oneDNN (CPU)."""
        for lay in self.layers:
            for lin in lay.linears():
                lin.pack(batch_hint)
        self.head.pack(batch_hint)

    @classmethod
    def _from_gpt(cls, m) -> Decoder:
        layers = [_Layer(b.ln1.weight.detach(), b.ln1.bias.detach(), _lin(b.qkv), _lin(b.proj),
                         b.ln2.weight.detach(), b.ln2.bias.detach(), _lin(b.fc), _lin(b.out))
                  for b in m.blocks]
        c = m.cfg
        return cls(layers=layers, embed=m.tok.weight.detach(),
                   head=Linear(m.tok.weight.detach(), None), final_w=m.ln.weight.detach(),
                   final_b=m.ln.bias.detach(), n_head=c.n_head, n_kv_head=c.n_head,
                   head_dim=c.d_model // c.n_head, max_positions=c.max_len, norm="layer",
                   eps=m.ln.eps, mlp="gelu", pos_embed=m.pos.weight.detach())

    @classmethod
    def _from_llama(cls, m) -> Decoder:
        cfg = m.config
        inner = m.model
        n_head = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
        layers = []
        for lay in inner.layers:
            a, f = lay.self_attn, lay.mlp
            layers.append(_Layer(
                lay.input_layernorm.weight.detach(), None,
                Linear(_cat(a.q_proj.weight, a.k_proj.weight, a.v_proj.weight),
                       _cat(a.q_proj.bias, a.k_proj.bias, a.v_proj.bias)),
                _lin(a.o_proj), lay.post_attention_layernorm.weight.detach(), None,
                Linear(_cat(f.gate_proj.weight, f.up_proj.weight),
                       _cat(f.gate_proj.bias, f.up_proj.bias)),
                _lin(f.down_proj)))
        max_pos = int(getattr(cfg, "max_position_embeddings", 2048) or 2048)
        rot = inner.rotary_emb
        # Positions × inverse frequencies exactly as transformers computes them (float32).
        pos = torch.arange(max_pos + 1, device=rot.inv_freq.device, dtype=torch.float32)
        freqs = pos[:, None] * rot.inv_freq.float()[None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        scale = float(getattr(rot, "attention_scaling", 1.0))
        dtype = inner.embed_tokens.weight.dtype
        half = emb.shape[-1] // 2
        sin = emb.sin() * scale
        # rotate_half(x) * sin == roll(x, half) * [-sin, sin]: one roll instead of a
        # negate and a concatenation, with bit-identical results.
        rope = ((emb.cos() * scale).to(dtype),
                torch.cat([-sin[:, :half], sin[:, half:]], dim=-1).to(dtype))
        eps = float(getattr(cfg, "rms_norm_eps", 1e-6))
        return cls(layers=layers, embed=inner.embed_tokens.weight.detach(),
                   head=_lin(m.lm_head), final_w=inner.norm.weight.detach(),
                   final_b=None, n_head=n_head, n_kv_head=cfg.num_key_value_heads,
                   head_dim=head_dim, max_positions=max_pos, norm="rms", eps=eps,
                   mlp="swiglu", rope=rope)

    def to(self, dtype: torch.dtype) -> Decoder:
        """A copy with floating weights cast to ``dtype`` (not packed)."""
        def c(t):
            return None if t is None else t.to(dtype)

        return Decoder(layers=[lay.to(dtype) for lay in self.layers], embed=c(self.embed),
                       head=self.head.to(dtype), final_w=c(self.final_w),
                       final_b=c(self.final_b), n_head=self.n_head, n_kv_head=self.n_kv_head,
                       head_dim=self.head_dim, max_positions=self.max_positions,
                       norm=self.norm, eps=self.eps, mlp=self.mlp, pos_embed=c(self.pos_embed),
                       rope=None if self.rope is None else (c(self.rope[0]), c(self.rope[1])))

    # ---- forward ------------------------------------------------------------------------

    def _normed(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if self.norm == "layer":
            return F.layer_norm(x, (x.shape[-1],), w, b, self.eps)
        if x.dtype == torch.float32:
            # Fused; equal to transformers' RMSNorm in float32.
            return F.rms_norm(x, (x.shape[-1],), w, self.eps)
        # transformers' RMSNorm: statistics in float32, scale in the input dtype.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return w * xf.to(x.dtype)

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * sin

    def forward(self, ids: torch.Tensor, pos: torch.Tensor, cache, rows: torch.Tensor | None,
                window: int, last: torch.Tensor | str | None = None) -> torch.Tensor:
        """Run ``ids`` (``[n, t]``) at positions ``pos`` (``[n, t]``) for cache slots ``rows``
        (``[n]``; ``None``: slots ``0..n-1``, read without copying), writing their keys and
        values into the cache; each position attends to its slot's positions ``0..pos``.
        ``window`` > every ``pos`` bounds the keys read.

        Returns logits ``[n, vocab]`` at column ``last`` of each row (``[n]``; default the last
        column), or ``[n, t, vocab]`` when ``last`` is ``"all"``.
        """
        n, t = ids.shape
        hq, hk, dh = self.n_head, self.n_kv_head, self.head_dim
        g = hq // hk
        x = F.embedding(ids, self.embed)
        # Rows that only pad a captured batch sit at the cache's scratch position, which may
        # be one past the position tables.
        table_pos = pos.clamp(max=self.max_positions - 1)
        if self.pos_embed is not None:
            x = x + F.embedding(table_pos, self.pos_embed)
        cos = sin = None
        if self.rope is not None:
            cos = F.embedding(table_pos, self.rope[0])[:, :, None, :]
            sin = F.embedding(table_pos, self.rope[1])[:, :, None, :]
        contiguous = rows is None
        slot_ix = (torch.arange(n, device=ids.device) if contiguous else rows)[:, None]
        allowed = torch.arange(window, device=ids.device)[None, None, :] <= pos[:, :, None]
        scale = dh ** -0.5
        bias = None
        if t == 1:
            # Additive mask laid out for the grouped decode matmul, built once for all layers.
            bias = torch.zeros(n, hk, g, window, device=ids.device, dtype=cache.k.dtype) \
                .masked_fill_(~allowed[:, :, None, :], float("-inf")).view(n * hk, g, window)
        for i, L in enumerate(self.layers):
            h = self._normed(x, L.n1_w, L.n1_b)
            qkv = L.qkv(h)
            qk = qkv[..., :(hq + hk) * dh].view(n, t, hq + hk, dh)
            if cos is not None:
                qk = self._rotate(qk, cos, sin)
            q, k = qk[:, :, :hq], qk[:, :, hq:]
            v = qkv[..., (hq + hk) * dh:].view(n, t, hk, dh)
            ck, cv = cache.k[i], cache.v[i]
            ck[slot_ix, :, pos] = k.to(ck.dtype)
            cv[slot_ix, :, pos] = v.to(cv.dtype)
            if contiguous:
                keys, vals = ck[:n, :, :window], cv[:n, :, :window]
            else:
                keys, vals = ck[rows, :, :window], cv[rows, :, :window]
            a = self._attend(q.to(keys.dtype), keys, vals, allowed, bias, scale, g).to(x.dtype)
            x = x + L.o(a.reshape(n, t, hq * dh))
            h = self._normed(x, L.n2_w, L.n2_b)
            u = L.up(h)
            if self.mlp == "swiglu":
                gate, up = u.chunk(2, dim=-1)
                u = F.silu(gate) * up
            else:
                u = F.gelu(u)
            x = x + L.down(u)
        if isinstance(last, str):
            return self.head(self._normed(x, self.final_w, self.final_b))
        x = x[:, -1] if last is None else x[torch.arange(n, device=x.device), last]
        return self.head(self._normed(x, self.final_w, self.final_b))

    @staticmethod
    def _attend(q: torch.Tensor, keys: torch.Tensor, vals: torch.Tensor,
                allowed: torch.Tensor, bias: torch.Tensor | None, scale: float,
                g: int) -> torch.Tensor:
        """Grouped-query attention of ``q`` ``[n, t, hq, d]`` over ``keys``/``vals``
        ``[n, hk, w, d]`` where ``allowed`` ``[n, t, w]``; returns ``[n, t, hq, d]``."""
        n, t, hq, d = q.shape
        hk, w = keys.shape[1], keys.shape[2]
        if bias is None:
            a = F.scaled_dot_product_attention(q.transpose(1, 2), keys, vals,
                                               attn_mask=allowed[:, None], scale=scale,
                                               enable_gqa=g > 1)
            return a.transpose(1, 2)
        # One query per row: batched matmuls beat the fused kernel's set-up cost, and the
        # query heads of one key/value head share a matmul instead of copying the keys.
        s = torch.baddbmm(bias, q.reshape(n * hk, g, d),
                          keys.reshape(n * hk, w, d).transpose(1, 2), alpha=scale)
        # softmax in float32 even for a bfloat16 cache (a no-op cast in float32)
        a = torch.bmm(s.softmax(-1, dtype=torch.float32).to(vals.dtype),
                      vals.reshape(n * hk, w, d))
        return a.view(n, 1, hq, d)
