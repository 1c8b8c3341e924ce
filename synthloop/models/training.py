"""Training loop and NLL scoring for causal LMs over token sequences.

Backend-agnostic: a backend passes a ``logits_fn(input_ids) -> logits`` and its parameters.
Records are packed (``[BOS] + tokens`` each, shuffled per epoch with the seed) into fixed-length
sequences, as in LM pretraining; scoring treats every record on its own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from synthloop.models.params import TrainParams
from synthloop.progress import Advance, Progress

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full precision on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def pack(seqs: Sequence[Sequence[int]], bos_id: int, seq_len: int,
         rng: np.random.Generator) -> np.ndarray:
    """Shuffle records, join them as ``[BOS] + tokens`` and cut windows of ``seq_len + 1``.

    Returns an int64 array ``[n_windows, seq_len + 1]`` (input is ``[:, :-1]``, target
    ``[:, 1:]``). The leftover tail shorter than a window is dropped; it differs every epoch.
    """
    order = rng.permutation(len(seqs))
    parts = []
    bos = np.array([bos_id], dtype=np.int64)
    for i in order:
        parts.append(bos)
        parts.append(np.asarray(seqs[i], dtype=np.int64))
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    n = len(stream) // (seq_len + 1)
    return stream[: n * (seq_len + 1)].reshape(n, seq_len + 1)


def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup·total`` steps, then cosine decay to peak/10."""
    w = max(1, int(warmup * total))
    if step < w:
        return peak * (step + 1) / w
    frac = (step - w) / max(1, total - w)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train_loop(logits_fn: LogitsFn, parameters: Iterable[torch.nn.Parameter],
               seqs: Sequence[Sequence[int]], *, bos_id: int, params: TrainParams, seed: int,
               device: torch.device,
               progress: Progress | None = None, stage: str = "train") -> list[float]:
    """Train on ``seqs`` with AdamW; returns the loss of every step (nats/token).

    ``progress`` gets a stage called ``stage`` of as many units as optimiser steps, advanced
    after each step.
    """
    params_list = [p for p in parameters if p.requires_grad]
    rng = np.random.default_rng(seed)
    total_tokens = sum(len(s) + 1 for s in seqs)
    if total_tokens < 2:
        raise ValueError("too little data to train: fewer than 2 tokens")
    # Less data than one packed sequence: train on one shorter window per epoch instead.
    seq_len = min(params.seq_len, total_tokens - 1)
    per_epoch = total_tokens // (seq_len + 1)
    total = max(1, math.ceil(params.epochs * per_epoch / params.batch_size))
    if params.max_steps:
        total = min(total, params.max_steps)
    decay = [p for p in params_list if p.dim() >= 2]
    no_decay = [p for p in params_list if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": params.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=params.lr, betas=(0.9, 0.95),
                            fused=device.type == "cuda")
    torch.manual_seed(seed)
    if progress is not None:
        progress.stage(stage, total)
    losses: list[float] = []
    windows = np.zeros((0, seq_len + 1), dtype=np.int64)
    cursor = 0
    for step in range(total):
        if cursor + params.batch_size > len(windows):
            windows = np.concatenate([windows[cursor:], pack(seqs, bos_id, seq_len, rng)])
            cursor = 0
        batch = torch.from_numpy(windows[cursor:cursor + params.batch_size]).to(device)
        cursor += params.batch_size
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, params.lr, params.warmup)
        with autocast(device):
            logits = logits_fn(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                               batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params_list, params.grad_clip)
        opt.step()
        losses.append(loss.item())
        if progress is not None:
            progress.advance(1)
    return losses


@torch.no_grad()
def score_nll(logits_fn: LogitsFn, seqs: Sequence[Sequence[int]], *, bos_id: int,
              device: torch.device, batch_size: int = 64, max_len: int | None = None,
              progress: Advance | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-record summed NLL (nats) of every token given ``[BOS]`` and the tokens before it.

    Returns ``(nll_sum, n_tokens)`` arrays in record order. Empty records score 0 over 0.
    Records longer than ``max_len`` tokens are scored on their first ``max_len`` tokens (the
    counts say how many).
    """
    if max_len is not None:
        seqs = [s[:max_len] for s in seqs]
    n = len(seqs)
    nll = np.zeros(n, dtype=np.float64)
    counts = np.array([len(s) for s in seqs], dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    for s in range(0, n, batch_size):
        rows = [int(i) for i in order[s:s + batch_size] if counts[i] > 0]
        if not rows:
            continue
        width = int(max(counts[i] for i in rows))
        inp = torch.full((len(rows), width), bos_id, dtype=torch.long)
        tgt = torch.full((len(rows), width), -100, dtype=torch.long)
        for j, i in enumerate(rows):
            seq = torch.as_tensor(seqs[i], dtype=torch.long)
            inp[j, 1:len(seq)] = seq[:-1]
            tgt[j, :len(seq)] = seq
        inp, tgt = inp.to(device), tgt.to(device)
        with autocast(device):
            logits = logits_fn(inp)
        tok_nll = F.cross_entropy(logits.float().transpose(1, 2), tgt, ignore_index=-100,
                                  reduction="none")
        sums = tok_nll.sum(1).double().cpu().numpy()
        nll[rows] = sums
        if progress:
            progress(len(rows))
    return nll, counts
