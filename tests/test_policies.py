from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from synthloop.curate.policies import mix, parse_policies, parse_policy, select
from synthloop.errors import ConfigError
from synthloop.records import Generator, text_records
from synthloop.records.lineage import lineage_summary

N = 50
GEN = Generator("m", "0" * 64, {}, 0)
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _real() -> pa.Table:
    return text_records([f"real {i}" for i in range(N)])


def _synth(g: int, n: int = N) -> pa.Table:
    return text_records([f"synthetic g{g} #{i}" for i in range(n)], origin="synthetic",
                        generation=g, generator=GEN, parents=[[f"p{i}"] for i in range(n)],
                        extra={"gen0_ppl": [float(i) for i in range(n)]})


def _sets(k: int) -> dict[int, pa.Table]:
    return {g: _synth(g) for g in range(1, k + 1)}


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_parse():
    assert parse_policy("keep-real:0.1").real_fraction == 0.1
    f = parse_policy("filter:ppl-top:0.2")
    assert f.filter_name == "ppl-top" and f.n_candidates(100) == 125
    assert [p.spec for p in parse_policies("replace, accumulate")] == ["replace", "accumulate"]
    for bad in ["nope", "keep-real", "keep-real:2", "keep-real:x", "filter:ppl-top:1.0",
                "filter:unknown:0.2", "replace,replace", ""]:
        with pytest.raises(ConfigError):
            parse_policies(bad)


def test_replace_is_only_newest_synthetic():
    t = mix(parse_policy("replace"), _real(), _sets(3), 3, _rng())
    s = lineage_summary(t)
    assert s == {"records": N, "real": 0, "synthetic": N, "synthetic_share": 1.0,
                 "generators": {"m": N}, "generator_weights_sha256": {"m": "0" * 64},
                 "depth_histogram": {"3": N}, "watermarks": {},
                 "digital_source_types": {TRAINED: N}}
    assert len(set(t.column("id").to_pylist())) == N  # no record twice


def test_keep_real_exact_counts():
    t = mix(parse_policy("keep-real:0.1"), _real(), _sets(2), 2, _rng())
    s = lineage_summary(t)
    assert s["records"] == N and s["real"] == 5 and s["depth_histogram"] == {"0": 5, "2": 45}
    real_ids = set(_real().column("id").to_pylist())
    got_real = [i for i, o in zip(t.column("id").to_pylist(), t.column("origin").to_pylist(),
                                  strict=True) if o == "real"]
    assert set(got_real) <= real_ids


def test_accumulate_keeps_everything():
    t = mix(parse_policy("accumulate"), _real(), _sets(3), 3, _rng())
    assert lineage_summary(t)["depth_histogram"] == {"0": N, "1": N, "2": N, "3": N}
    assert t.num_rows == 4 * N


def test_max_depth_accumulates_only_shallow_generations():
    t = mix(parse_policy("max-depth:2"), _real(), _sets(4), 4, _rng())
    assert lineage_summary(t)["depth_histogram"] == {"0": N, "1": N, "2": N}
    with pytest.raises(ConfigError):
        parse_policy("max-depth:-1")


def test_accumulate_subsample_is_compute_matched():
    t = mix(parse_policy("accumulate-subsample"), _real(), _sets(3), 3, _rng())
    s = lineage_summary(t)
    assert s["records"] == N
    assert set(s["depth_histogram"]) <= {"0", "1", "2", "3"} and len(s["depth_histogram"]) > 1


def test_mix_is_seeded():
    a = mix(parse_policy("keep-real:0.3"), _real(), _sets(1), 1, np.random.default_rng(1))
    b = mix(parse_policy("keep-real:0.3"), _real(), _sets(1), 1, np.random.default_rng(1))
    c = mix(parse_policy("keep-real:0.3"), _real(), _sets(1), 1, np.random.default_rng(2))
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    assert a.column("id").to_pylist() != c.column("id").to_pylist()


def test_filter_drops_highest_perplexity_with_reasons():
    policy = parse_policy("filter:ppl-top:0.2")
    cands = _synth(1, policy.n_candidates(N))  # gen0_ppl = 0, 1, 2, ...
    kept, rejected = select(policy, cands, N)
    assert kept.num_rows == N and rejected.num_rows == cands.num_rows - N
    assert max(kept.column("gen0_ppl").to_pylist()) < min(rejected.column("gen0_ppl")
                                                           .to_pylist())
    reasons = rejected.column("drop_reason").to_pylist()
    assert all(r.startswith("filter:ppl-top:0.2: gen0_ppl") for r in reasons)
    bottom = parse_policy("filter:ppl-bottom:0.2")
    kept_b, _ = select(bottom, cands, N)
    assert min(kept_b.column("gen0_ppl").to_pylist()) == cands.num_rows - N


def test_mix_needs_enough_synthetic():
    with pytest.raises(ValueError):
        mix(parse_policy("replace"), _real(), {1: _synth(1, N - 1)}, 1, _rng())
