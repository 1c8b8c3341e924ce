"""Byte-level BPE tokenizer trained on a corpus (for the from-scratch model family)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from synthloop.records.io import write_text_atomic

BOS = "<|bos|>"


class BPETokenizer:
    """A byte-level BPE tokenizer with one special token, ``<|bos|>`` (id 0).

    Byte-level means any UTF-8 text encodes without unknown tokens, and decoding the
    encoding gives the text back.
    """

    def __init__(self, tokenizer: Tokenizer):
        self._tok = tokenizer
        self.bos_id = tokenizer.token_to_id(BOS)
        if self.bos_id is None:
            raise ValueError(f"tokenizer has no {BOS} token")

    @classmethod
    def train(cls, texts: Sequence[str], vocab_size: int = 1024) -> BPETokenizer:
        """Train on ``texts`` (deterministic for the same texts and vocab size)."""
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[BOS], show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self._tok.decode_batch([list(x) for x in ids], skip_special_tokens=True)

    def to_json(self) -> str:
        return self._tok.to_str()

    @classmethod
    def from_json(cls, text: str) -> BPETokenizer:
        return cls(Tokenizer.from_str(text))

    def save(self, path: str | Path) -> None:
        write_text_atomic(self.to_json(), path)

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(json.loads(self.to_json()), sort_keys=True)
                              .encode()).hexdigest()[:16]
