"""The LM interface every capability speaks, and the from-scratch backend.

An :class:`LanguageModel` encodes and decodes text, trains on token sequences, scores them
(NLL) and continues prompts. ``fresh(seed)`` gives a new model at its starting weights: random
initialisation for a from-scratch model, the pretrained weights for a pretrained one — each
generation of the collapse lab starts from there.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from synthloop.errors import ConfigError
from synthloop.models.engine import engine_for
from synthloop.models.gpt import GPT, SIZES, GPTConfig
from synthloop.models.params import GenParams, TrainParams
from synthloop.models.tokenizer import BPETokenizer
from synthloop.models.training import score_nll, train_loop
from synthloop.progress import Advance, Progress


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when present) as a torch device."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA GPU is visible",
                          fields=("device",))
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device '{device}' (use cpu, cuda or auto)")
    return dev


def state_sha256(module: torch.nn.Module) -> str:
    """sha256 of a module's weights (names, dtypes, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class LanguageModel(ABC):
    """A causal LM backend: tokenise, train, score, generate, save."""

    name: str
    device: torch.device

    @property
    @abstractmethod
    def bos_id(self) -> int: ...

    @property
    def banned_ids(self) -> tuple[int, ...]:
        """Tokens generation must never emit (e.g. BOS between packed records)."""
        return (self.bos_id,)

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> list[list[int]]: ...

    def format_chat(self, user_message: str) -> str:
        """``user_message`` as the model expects a user turn (identity without a chat
        template)."""
        return user_message

    @abstractmethod
    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]: ...

    @abstractmethod
    def fresh(self, seed: int) -> LanguageModel:
        """A new model at the starting weights (random init with ``seed``, or pretrained)."""

    @abstractmethod
    def _logits_fn(self) -> Callable[[torch.Tensor], torch.Tensor]: ...

    @abstractmethod
    def _module(self) -> torch.nn.Module: ...

    @property
    def max_positions(self) -> int:
        """Longest sequence (BOS included) the model can take."""
        return 2048

    def num_params(self) -> int:
        return sum(p.numel() for p in self._module().parameters())

    def weights_sha256(self) -> str:
        return state_sha256(self._module())

    def train(self, seqs: Sequence[Sequence[int]], params: TrainParams, *, seed: int,
              progress: Progress | None = None, stage: str = "train") -> list[float]:
        """Train on token sequences (one per record); returns per-step losses (nats/token).
        ``progress`` gets a stage named ``stage`` advanced once per optimiser step."""
        self._module().train()
        try:
            return train_loop(self._logits_fn(), self._module().parameters(), seqs,
                              bos_id=self.bos_id, params=params, seed=seed,
                              device=self.device, progress=progress, stage=stage)
        finally:
            self._module().eval()

    def nll(self, seqs: Sequence[Sequence[int]], *, batch_size: int = 64,
            progress: Advance | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-record summed NLL in nats and token counts."""
        self._module().eval()
        return score_nll(self._logits_fn(), seqs, bos_id=self.bos_id, device=self.device,
                         batch_size=batch_size, max_len=self.max_positions, progress=progress)

    def perplexity(self, texts: Sequence[str], *, batch_size: int = 64) -> float:
        """Corpus perplexity of ``texts``: exp(total NLL / total tokens)."""
        nll, n = self.nll(self.encode(texts), batch_size=batch_size)
        return float(np.exp(nll.sum() / max(1, n.sum())))

    @abstractmethod
    def generate(self, prompts: Sequence[Sequence[int]], params: GenParams, *, seed: int,
                 progress: Advance | None = None) -> list[list[int]]:
        """Continue each prompt (token ids, BOS first) by ``params.max_new_tokens`` tokens;
        returns the new tokens only."""

    @abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the model to a folder atomically (safetensors + config + tokenizer)."""


def _atomic_dir(path: Path, write: Callable[[Path], None]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


class TinyLM(LanguageModel):
    """A from-scratch GPT (:mod:`synthloop.models.gpt`) with a byte-level BPE tokenizer."""

    KIND = "synthloop-gpt"

    def __init__(self, model: GPT, tokenizer: BPETokenizer, device: torch.device,
                 name: str = "tiny"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.name = name

    @classmethod
    def create(cls, tokenizer: BPETokenizer, *, size: str = "tiny", max_len: int = 160,
               seed: int = 0, device: str | torch.device = "cpu") -> TinyLM:
        """A randomly initialised model of a named size (see ``gpt.SIZES``)."""
        if size not in SIZES:
            raise ConfigError(f"unknown model size '{size}' (choose from {', '.join(SIZES)})")
        cfg = GPTConfig(vocab_size=tokenizer.vocab_size, max_len=max_len, **SIZES[size])
        torch.manual_seed(seed)
        return cls(GPT(cfg), tokenizer, resolve_device(device), name=size)

    @property
    def bos_id(self) -> int:
        return self.tokenizer.bos_id

    @property
    def max_positions(self) -> int:
        return self.model.cfg.max_len

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer.encode(texts)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.tokenizer.decode(ids)

    def fresh(self, seed: int) -> TinyLM:
        torch.manual_seed(seed)
        return TinyLM(GPT(self.model.cfg), self.tokenizer, self.device, self.name)

    def _logits_fn(self):
        return self.model

    def _module(self) -> torch.nn.Module:
        return self.model

    def generate(self, prompts, params, *, seed, progress=None, logits_processors=None,
                 dtype: torch.dtype | None = None, seeds=None):
        return engine_for(self.model, dtype=dtype).generate(
            prompts, params, seed=seed, banned_ids=self.banned_ids, progress=progress,
            logits_processors=logits_processors or (), seeds=seeds)

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        def write(tmp: Path) -> None:
            save_file({k: v.detach().cpu().contiguous() for k, v in
                       self.model.state_dict().items()}, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps(
                {"kind": self.KIND, "name": self.name, "gpt": self.model.cfg.to_dict()},
                indent=2))
            (tmp / "tokenizer.json").write_text(self.tokenizer.to_json(), encoding="utf-8")

        return _atomic_dir(Path(path), write)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> TinyLM:
        from safetensors.torch import load_file

        p = Path(path)
        cfg_json = json.loads((p / "config.json").read_text())
        model = GPT(GPTConfig(**cfg_json["gpt"]))
        model.load_state_dict(load_file(str(p / "model.safetensors")))
        return cls(model, BPETokenizer.load(p / "tokenizer.json"), resolve_device(device),
                   name=cfg_json.get("name", "tiny"))
