"""The generation engine against transformers' generate, on tiny random models (CPU)."""

from __future__ import annotations

import pytest
import torch

from synthloop.models.engine import Decoder, GenerationEngine, engine_for
from synthloop.models.engine.cache import plan_slots
from synthloop.models.engine.sampling import LogitsPipeline, counter_uniforms
from synthloop.models.gpt import GPT, GPTConfig
from synthloop.models.params import GenParams

VOCAB = 320


def _hf_model(kind: str):
    import transformers as tf

    common = {"vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 96,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 256, "bos_token_id": 0, "eos_token_id": 1,
              "pad_token_id": 0}
    torch.manual_seed({"llama": 0, "qwen2": 1, "mistral": 2}[kind])
    if kind == "llama":
        cfg = tf.LlamaConfig(**common, tie_word_embeddings=True, rope_theta=10000.0)
        return tf.LlamaForCausalLM(cfg).eval()
    if kind == "qwen2":  # q/k/v biases, untied head
        cfg = tf.Qwen2Config(**common, tie_word_embeddings=False, use_sliding_window=False)
        return tf.Qwen2ForCausalLM(cfg).eval()
    cfg = tf.MistralConfig(**common, sliding_window=None)
    return tf.MistralForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def llama():
    return _hf_model("llama")


def _prompts(n: int, seed: int = 0, lo: int = 3, hi: int = 40) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (n,), generator=g).tolist()
    return [torch.randint(2, VOCAB, (k,), generator=g).tolist() for k in lengths]


def _hf_one(model, prompt, **kw) -> list[int]:
    x = torch.tensor([prompt])
    with torch.no_grad():
        y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), pad_token_id=0, **kw)
    return y[0, len(prompt):].tolist()


@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral"])
def test_decoder_logits_equal_transformers_forward(kind):
    model = _hf_model(kind)
    dec = Decoder.from_module(model)
    from synthloop.models.engine.cache import StaticKVCache

    x = torch.tensor(_prompts(3, lo=20, hi=21))
    cache = StaticKVCache(dec.n_layer, 3, dec.n_kv_head, 20, dec.head_dim, dec.device,
                          torch.float32)
    pos = torch.arange(20).expand(3, 20)
    with torch.no_grad():
        ours = dec.forward(x, pos, cache, None, 20, "all")
        theirs = model(input_ids=x).logits
    assert torch.allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("kind", ["llama", "qwen2", "mistral"])
def test_greedy_equals_transformers_token_for_token(kind):
    model = _hf_model(kind)
    prompts = _prompts(9)
    # 4 slots for 9 prompts of different lengths: slots are refilled as rows finish.
    ours = engine_for(model).generate(prompts, GenParams(max_new_tokens=24, greedy=True,
                                                         batch_size=4))
    for p, o in zip(prompts, ours, strict=True):
        assert o == _hf_one(model, p, max_new_tokens=24, do_sample=False, eos_token_id=None)


def test_beam_search_equals_transformers(llama):
    prompts = _prompts(4, seed=3)
    params = GenParams(max_new_tokens=10, num_beams=3, repetition_penalty=2.0, batch_size=6)
    ours = engine_for(llama).generate(prompts, params, banned_ids=[1])
    for p, o in zip(prompts, ours, strict=True):
        assert o == _hf_one(llama, p, max_new_tokens=10, min_new_tokens=10, num_beams=3,
                            do_sample=False, repetition_penalty=2.0, bad_words_ids=[[1]])


def test_greedy_with_stop_token_equals_transformers(llama):
    prompts = _prompts(6, seed=5)
    eng = engine_for(llama)
    # a stop token that greedy decoding actually meets in some rows
    free = eng.generate(prompts, GenParams(max_new_tokens=30, greedy=True))
    stop = max(set(free[0][3:]), key=free[0][3:].count)
    ours = eng.generate(prompts, GenParams(max_new_tokens=30, greedy=True, batch_size=2),
                        stop_ids=[stop])
    for p, o in zip(prompts, ours, strict=True):
        ref = _hf_one(llama, p, max_new_tokens=30, do_sample=False, eos_token_id=stop)
        assert o == (ref[:ref.index(stop)] if stop in ref else ref)
    assert any(len(o) < 30 for o in ours)


def test_processing_order_matches_transformers(llama):
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        NoBadWordsLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    ids = torch.tensor(_prompts(4, lo=12, hi=13))
    with torch.no_grad():
        logits = llama(input_ids=ids).logits[:, -1]
    hf = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.3),
                              NoBadWordsLogitsProcessor([[7]], eos_token_id=1),
                              TemperatureLogitsWarper(0.7), TopKLogitsWarper(50),
                              TopPLogitsWarper(0.9)])
    pipe = LogitsPipeline(VOCAB, banned_ids=[7], repetition_penalty=1.3, temperature=0.7,
                          top_k=50, top_p=0.9)
    seen = torch.zeros(4, VOCAB, dtype=torch.bool).scatter_(1, ids, True)
    ours = pipe.warp(pipe.adjust(logits.clone(), seen, None))
    theirs = hf(ids, logits.clone())
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    assert torch.allclose(ours.softmax(-1), theirs.softmax(-1), atol=1e-6)


def test_sampled_distribution_matches_transformers(llama):
    """Many one-token continuations of one prompt: the engine's empirical distribution is
    the processed distribution transformers samples from."""
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
    )

    prompt = _prompts(1, seed=9, lo=10, hi=11)[0]
    with torch.no_grad():
        logits = llama(input_ids=torch.tensor([prompt])).logits[:, -1]
    warp = LogitsProcessorList([TemperatureLogitsWarper(1.5), TopKLogitsWarper(40)])
    expect = warp(torch.tensor([prompt]), logits)[0].softmax(-1)
    n = 6000
    out = engine_for(llama).generate([prompt] * n, GenParams(max_new_tokens=1, temperature=1.5,
                                                             top_k=40, batch_size=512), seed=1)
    freq = torch.bincount(torch.tensor([o[0] for o in out]), minlength=VOCAB).double() / n
    assert 0.5 * (freq - expect.double()).abs().sum() < 0.05  # total variation
    assert set(torch.nonzero(freq).flatten().tolist()) <= \
        set(torch.nonzero(expect).flatten().tolist())


def test_sampling_is_seeded_and_independent_of_batching(llama):
    eng = engine_for(llama)
    prompts = _prompts(10, seed=2)
    p = GenParams(max_new_tokens=16, temperature=0.9, top_p=0.95, batch_size=3)
    a = eng.generate(prompts, p, seed=7)
    b = eng.generate(prompts, GenParams(max_new_tokens=16, temperature=0.9, top_p=0.95,
                                        batch_size=64), seed=7)
    c = eng.generate(prompts, p, seed=8)
    assert a == b and a != c
    # a prompt's continuation does not depend on the other prompts (its stream is its index)
    alone = eng.generate([prompts[0]], p, seed=7)
    assert alone == [a[0]]


def test_per_prompt_lengths_chunked_prefill_and_small_cache(llama):
    prompts = _prompts(7, seed=4, lo=30, hi=90)
    limits = [5, 17, 1, 30, 9, 12, 3]
    ref = engine_for(llama).generate(prompts, GenParams(max_new_tokens=30, greedy=True),
                                     max_new_tokens=limits)
    assert [len(r) for r in ref] == limits
    # 16-token prefill calls (8-token chunks) and a cache budget of ~2 slots: same tokens.
    small = GenerationEngine(Decoder.from_module(llama), prefill_tokens=8,
                             memory_fraction=1e-12)
    got = small.generate(prompts, GenParams(max_new_tokens=30, greedy=True, batch_size=64),
                         max_new_tokens=limits)
    assert small.last_slots == 1 and got == ref


def test_plan_slots_caps_by_budget():
    assert plan_slots(256, per_slot=1000, device=torch.device("cpu"), budget=10_500) == 10
    assert plan_slots(4, per_slot=1000, device=torch.device("cpu"), budget=10**9) == 4
    assert plan_slots(4, per_slot=10**12, device=torch.device("cpu"), budget=1) == 1


def test_logits_processors_see_each_rows_history(llama):
    seen_rows: list[list[int]] = []

    def record(input_ids, scores):
        seen_rows.extend(input_ids.tolist())
        return scores

    prompts = [[5, 6, 7], [8, 9]]
    out = engine_for(llama).generate(prompts, GenParams(max_new_tokens=2, greedy=True),
                                     logits_processors=[record])
    # step 1: each prompt, right-aligned; step 2: prompt + first token
    assert seen_rows[0] == [5, 6, 7] and seen_rows[1] == [8, 8, 9]
    assert seen_rows[2] == [5, 6, 7, out[0][0]] and seen_rows[3][-3:] == [8, 9, out[1][0]]


def test_errors_name_the_prompt(llama):
    eng = engine_for(llama)
    with pytest.raises(ValueError, match="prompt 1: 250 tokens"):
        eng.generate([[3], [3] * 250], GenParams(max_new_tokens=10))
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        eng.generate([[]], GenParams(max_new_tokens=10))


def test_gpt_greedy_equals_full_forward_argmax():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=50, n_layer=2, n_head=2, d_model=32, max_len=64)).eval()
    prompts = [[0, 5, 6], [0, 7, 8, 9, 10], [0, 1]]
    out = engine_for(gpt).generate(prompts, GenParams(max_new_tokens=12, greedy=True,
                                                      batch_size=2))
    for p, o in zip(prompts, out, strict=True):
        seq = list(p)
        with torch.no_grad():
            for _ in range(12):
                seq.append(int(gpt(torch.tensor([seq]))[0, -1].argmax()))
        assert o == seq[len(p):]


def test_engine_follows_weight_updates():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=50, n_layer=1, n_head=2, d_model=16, max_len=32)).eval()
    first = engine_for(gpt)
    assert engine_for(gpt) is first  # cached while the weights are unchanged
    with torch.no_grad():
        gpt.tok.weight.mul_(3.0)
    assert engine_for(gpt) is not first
    p = GenParams(max_new_tokens=8, greedy=True)
    seq = [0, 4]
    with torch.no_grad():
        for _ in range(8):
            seq.append(int(gpt(torch.tensor([seq]))[0, -1].argmax()))
    assert engine_for(gpt).generate([[0, 4]], p) == [seq[2:]]


def test_counter_uniforms_are_uniform_and_keyed():
    streams = torch.arange(200_000)
    u = counter_uniforms(3, streams, torch.zeros_like(streams))
    assert float(u.min()) >= 0 and float(u.max()) < 1
    hist = torch.histc(u, bins=20, min=0, max=1) / len(u)
    assert torch.allclose(hist, torch.full((20,), 0.05), atol=0.003)
    assert not torch.equal(u, counter_uniforms(4, streams, torch.zeros_like(streams)))
    assert not torch.equal(u, counter_uniforms(3, streams, torch.ones_like(streams)))
    assert torch.equal(u, counter_uniforms(3, streams, torch.zeros_like(streams)))


def test_unknown_architecture_is_left_to_transformers():
    from transformers import GPT2Config, GPT2LMHeadModel

    m = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1,
                                   n_head=2))
    assert engine_for(m) is None


def test_static_shape_decode_path_equals_eager(llama):
    """The CUDA-graph path's logic — batches padded to power-of-two buckets, windows rounded
    up, padding rows parked on the scratch position — gives the eager path's tokens while
    slots refill and drain (run eagerly on CPU; on a GPU the same steps are graph replays)."""
    prompts = _prompts(11, seed=6)
    limits = [3, 20, 7, 1, 15, 9, 20, 2, 11, 5, 18]
    p = GenParams(max_new_tokens=20, greedy=True, batch_size=5)
    eager = engine_for(llama).generate(prompts, p, max_new_tokens=limits)
    graphed = GenerationEngine(Decoder.from_module(llama), use_graphs=True)
    assert graphed.generate(prompts, p, max_new_tokens=limits) == eager
    sampled = GenParams(max_new_tokens=20, temperature=0.8, batch_size=5)
    assert graphed.generate(prompts, sampled, seed=2, max_new_tokens=limits) == \
        engine_for(llama).generate(prompts, sampled, seed=2, max_new_tokens=limits)


def test_bfloat16_engine_is_cached_beside_the_model_dtype_one(llama):
    from synthloop.models.engine.cache import StaticKVCache

    f32, bf16 = engine_for(llama), engine_for(llama, dtype=torch.bfloat16)
    assert f32.decoder.dtype == torch.float32 and bf16.decoder.dtype == torch.bfloat16
    assert engine_for(llama, dtype=torch.bfloat16) is bf16 and engine_for(llama) is f32
    x = torch.tensor(_prompts(2, lo=16, hi=17))
    pos = torch.arange(16).expand(2, 16)
    logits = []
    for dec in (f32.decoder, bf16.decoder):
        cache = StaticKVCache(dec.n_layer, 2, dec.n_kv_head, 16, dec.head_dim, dec.device,
                              torch.float32)
        with torch.no_grad():
            logits.append(dec.forward(x, pos, cache, None, 16).float())
    assert torch.allclose(logits[0], logits[1], atol=0.05)
    out = bf16.generate(_prompts(3), GenParams(max_new_tokens=5, greedy=True))
    assert [len(o) for o in out] == [5, 5, 5]


def test_length_dependent_rope_is_left_to_transformers():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1,
                      rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    assert engine_for(LlamaForCausalLM(cfg)) is None
