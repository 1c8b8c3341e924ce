"""A pre-allocated key/value cache: one row ("slot") per sequence being decoded."""

from __future__ import annotations

import torch

#: Share of free memory the cache may take (the rest is weights' working set and activations).
MEMORY_FRACTION = 0.5


def free_memory_bytes(device: torch.device) -> int:
    """Bytes the cache could use on ``device``: free GPU memory, or available host RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def bytes_per_slot(n_layer: int, n_kv_head: int, head_dim: int, length: int,
                   dtype: torch.dtype) -> int:
    """Cache bytes one sequence of ``length`` positions needs (keys and values, all layers)."""
    return 2 * n_layer * n_kv_head * head_dim * length * torch.empty((), dtype=dtype).element_size()


def plan_slots(wanted: int, per_slot: int, device: torch.device,
               fraction: float = MEMORY_FRACTION, budget: int | None = None) -> int:
    """How many slots fit: ``wanted`` capped by ``fraction`` of free memory (or ``budget``
    bytes). At least 1."""
    avail = budget if budget is not None else int(free_memory_bytes(device) * fraction)
    return max(1, min(wanted, avail // max(1, per_slot)))


class StaticKVCache:
    """Keys and values as ``[layer, slot, kv_head, position, head_dim]``, allocated once.

    One position past ``length`` is kept as scratch: rows that only pad a captured batch write
    there, never over a live sequence.
    """

    def __init__(self, n_layer: int, slots: int, n_kv_head: int, length: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype):
        shape = (n_layer, slots, n_kv_head, length + 1, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.slots = slots
        self.length = length

    @property
    def scratch(self) -> int:
        return self.length

    def move(self, dst: int, src: int, upto: int) -> None:
        """Copy slot ``src``'s first ``upto`` positions to slot ``dst``."""
        self.k[:, dst, :, :upto] = self.k[:, src, :, :upto]
        self.v[:, dst, :, :upto] = self.v[:, src, :, :upto]

    def copy_rows(self, dst: torch.Tensor, src: torch.Tensor, lo: int, hi: int) -> None:
        """Slots ``dst`` take slots ``src``'s positions ``lo..hi-1`` (beam search; sources
        are read before any destination is written)."""
        self.k[:, dst, :, lo:hi] = self.k[:, src, :, lo:hi]
        self.v[:, dst, :, lo:hi] = self.v[:, src, :, lo:hi]
