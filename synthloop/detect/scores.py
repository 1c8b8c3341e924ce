"""Per-token statistics for zero-shot AI-text detection, from one forward pass of a causal LM.

For each scored token x_t with the model's next-token distribution p_t:

- ``logp``: log p_t(x_t);
- ``mean``: E_{v~p_t}[log p_t(v)] (minus the entropy);
- ``var``: Var_{v~p_t}[log p_t(v)].

Fast-DetectGPT's analytic sampling discrepancy (Bao et al., ICLR 2024, with the scoring model
as its own sampling model) is ``(Σ logp - Σ mean) / sqrt(Σ var)``: how much more probable the
text is than what the model itself would typically write, in standard deviations. Machine text
scores high, human text near 0. The likelihood baseline is the mean ``logp`` (minus log
perplexity).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synthloop.progress import Advance


@dataclass
class TokenStats:
    """Statistics of one document's scored tokens (arrays of equal length)."""

    logp: np.ndarray
    mean: np.ndarray
    var: np.ndarray

    @property
    def n_tokens(self) -> int:
        return len(self.logp)


def token_stats(lm, texts: Sequence[str], *, max_tokens: int = 256, batch_size: int = 8,
                prefixes: Sequence[str] | None = None,
                progress: Advance | None = None) -> list[TokenStats]:
    """:class:`TokenStats` for the first ``max_tokens`` tokens of each text, one forward pass
    per batch. With ``prefixes``, each text is scored after its prefix (which is itself never
    scored), as when a model continued a prompt."""
    docs = lm.encode(list(texts))
    pre = lm.encode(list(prefixes)) if prefixes is not None else [[] for _ in docs]
    return token_stats_ids(lm, docs, prefixes=pre, max_tokens=max_tokens,
                           batch_size=batch_size, progress=progress)


@torch.no_grad()
def token_stats_ids(lm, docs: Sequence[Sequence[int]], *, max_tokens: int = 256,
                    batch_size: int = 8, prefixes: Sequence[Sequence[int]] | None = None,
                    progress: Advance | None = None) -> list[TokenStats]:
    """:func:`token_stats` on token ids (no BOS; it is added)."""
    module = lm._module()
    module.eval()
    logits_fn = lm._logits_fn()
    pre = prefixes if prefixes is not None else [[] for _ in docs]
    seqs = [([lm.bos_id] + list(p), list(d)[:max_tokens]) for p, d in zip(pre, docs,
                                                                          strict=True)]
    out: list[TokenStats | None] = [None] * len(seqs)
    order = np.argsort([-(len(p) + len(d)) for p, d in seqs], kind="stable")
    for s in range(0, len(order), batch_size):
        rows = [int(i) for i in order[s:s + batch_size]]
        width = max(len(seqs[i][0]) + len(seqs[i][1]) for i in rows)
        ids = torch.full((len(rows), width), lm.bos_id, dtype=torch.long)
        for j, i in enumerate(rows):
            full = seqs[i][0] + seqs[i][1]
            ids[j, :len(full)] = torch.tensor(full)
        logits = logits_fn(ids.to(lm.device)).float()
        for j, i in enumerate(rows):
            p, d = seqs[i]
            if not d:
                out[i] = TokenStats(np.zeros(0), np.zeros(0), np.zeros(0))
                continue
            # logits at position t predict token t + 1
            lg = logits[j, len(p) - 1:len(p) - 1 + len(d)]
            logprobs = F.log_softmax(lg, dim=-1)
            probs = logprobs.exp()
            target = torch.tensor(d, device=logprobs.device)
            lp = logprobs.gather(1, target[:, None])[:, 0]
            mean = (probs * logprobs).sum(-1)
            var = (probs * logprobs.square()).sum(-1) - mean.square()
            out[i] = TokenStats(lp.cpu().numpy().astype(np.float64),
                                mean.cpu().numpy().astype(np.float64),
                                var.clamp_min(0).cpu().numpy().astype(np.float64))
        if progress is not None:
            progress(len(rows))
    return out  # type: ignore[return-value]


def fast_detectgpt(stats: TokenStats, n_tokens: int | None = None) -> float:
    """Analytic sampling discrepancy over the first ``n_tokens`` tokens (all when None)."""
    n = stats.n_tokens if n_tokens is None else min(n_tokens, stats.n_tokens)
    if n == 0:
        return float("nan")
    var = stats.var[:n].sum()
    return float((stats.logp[:n].sum() - stats.mean[:n].sum()) / np.sqrt(max(var, 1e-12)))


def likelihood(stats: TokenStats, n_tokens: int | None = None) -> float:
    """Mean log-probability per token (minus log-perplexity) over the first ``n_tokens``."""
    n = stats.n_tokens if n_tokens is None else min(n_tokens, stats.n_tokens)
    return float(stats.logp[:n].mean()) if n else float("nan")


METHODS = {"fast-detectgpt": fast_detectgpt, "likelihood": likelihood}
