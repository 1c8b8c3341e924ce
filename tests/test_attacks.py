"""Attack-based privacy risk: intervals, the attacks on copied rows and on fresh real rows, and
the audit's warnings (5% copied rows flagged; fresh holdouts pass: test_audit_table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vega_datasets as vega

import synthloop
from synthloop.generate.copula import GaussianCopula
from synthloop.measures.attacks import (
    excess_risk,
    inference_risk,
    linkability_risk,
    membership_auc,
    singling_out_risk,
    wilson,
)
from synthloop.measures.columns import as_datetimes, infer_column_types

ATTACKS = (singling_out_risk, linkability_risk, inference_risk)


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    df = vega.local_data.seattle_weather()
    return df.sample(frac=1, random_state=0).reset_index(drop=True)


def _split(df: pd.DataFrame):
    types = infer_column_types(df)
    df = as_datetimes({"d": df}, types)["d"]
    return df.iloc[:730].reset_index(drop=True), df.iloc[730:].reset_index(drop=True), types


def test_wilson_interval_known_values():
    r = wilson(5, 10)
    assert (r.rate, round(r.low, 4), round(r.high, 4)) == (0.5, 0.2366, 0.7634)
    r = wilson(0, 10)
    assert r.low == 0.0 and round(r.high, 4) == 0.2775
    assert wilson(0, 0).high == 1.0  # nothing measured: nothing known


def test_excess_risk_is_the_share_of_what_control_leaves():
    risk, lo, hi = excess_risk(wilson(60, 100), wilson(20, 100))
    assert risk == pytest.approx(0.5)  # (0.6 - 0.2) / (1 - 0.2)
    assert lo < 0.5 < hi and lo > 0.2
    risk, lo, hi = excess_risk(wilson(30, 100), wilson(30, 100))
    assert risk == 0.0 and lo < 0 < hi


def test_copying_the_training_rows_is_caught_by_every_attack(weather):
    real, holdout, types = _split(weather)
    copies = real.sample(frac=1, random_state=1).reset_index(drop=True)
    link = linkability_risk(real, copies, holdout, types, seed=0)
    inf = inference_risk(real, copies, holdout, types, seed=0)
    single = singling_out_risk(real, copies, holdout, types, seed=0)
    mia = membership_auc(real, copies, holdout, types, seed=0)
    assert link.risk > 0.5 and link.low > 0.4
    assert inf.risk > 0.3 and inf.low > 0.2
    assert single.low > 0  # a predicate isolating a copy isolates its original
    assert mia["auc"] > 0.9 and mia["low"] > 0.85  # every member lies at distance 0
    # the naive attacker (random guesses) is far below the informed one
    assert link.naive.rate < 0.05 < link.original.rate
    assert set(inf.detail["secrets"]) == set(types)


def test_fresh_real_rows_carry_no_risk(weather):
    real, holdout, types = _split(weather)
    fresh, control = holdout.iloc[:365].reset_index(drop=True), \
        holdout.iloc[365:].reset_index(drop=True)
    for attack in ATTACKS:
        r = attack(real, fresh, control, types, seed=0)
        assert r.low < 0 < r.high or abs(r.risk) < 0.03, (r.attack, r.risk, r.low, r.high)
    mia = membership_auc(real, fresh, control, types, seed=0)
    assert mia["low"] < 0.5 < mia["high"]


def test_attacks_are_deterministic_per_seed(weather):
    real, holdout, types = _split(weather)
    syn = GaussianCopula().fit(real, seed=0).sample(len(real), seed=0)
    syn = as_datetimes({"s": syn}, types)["s"]
    for attack in ATTACKS:
        a = attack(real, syn, holdout, types, seed=3).as_dict()
        assert a == attack(real, syn, holdout, types, seed=3).as_dict()
    a = singling_out_risk(real, syn, holdout, types, seed=3)
    b = singling_out_risk(real, syn, holdout, types, seed=4)
    assert a.as_dict() != b.as_dict()  # other predicates


def test_linkability_needs_two_disjoint_column_sets(weather):
    real, holdout, types = _split(weather)
    with pytest.raises(ValueError, match="disjoint"):
        linkability_risk(real, real, holdout, types, aux_columns=(["wind"], ["wind"]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_audit_flags_five_percent_copied_rows(weather, seed):
    """A copula sample as large as the training rows, 5% of it replaced by training rows:
    an attack warning fires (not only the exact-copy share); the copula alone raises none."""
    df = weather.sample(frac=1, random_state=seed).reset_index(drop=True)
    real, holdout = df.iloc[:730].reset_index(drop=True), df.iloc[730:].reset_index(drop=True)
    syn = GaussianCopula().fit(real, seed=seed).sample(len(real), seed=seed)
    n_copy = round(0.05 * len(syn))
    leaky = pd.concat([syn.iloc[n_copy:], real.iloc[:n_copy]]).reset_index(drop=True)
    attack_names = {"singling_out_risk", "linkability_risk", "inference_risk", "membership_auc"}
    clean = synthloop.audit(real, syn, holdout, kind="table", seed=seed)
    assert not attack_names & {w.metric for w in clean.warnings}
    r = synthloop.audit(real, leaky, holdout, kind="table", seed=seed)
    assert attack_names & {w.metric for w in r.warnings}
    link = r.metric("linkability_risk")
    assert link.value > link.baseline and link.breakdown["low"] > 0
    assert set(r.data["attacks"]) == attack_names
    assert np.isfinite(r.metric("membership_auc").value)


def test_inference_guesses_compare_with_pandas_missing_values():
    """Peers write nullable dtypes (pd.NA): a missing guess or secret is right only when both
    are missing, never an error."""
    from synthloop.measures.attacks import _correct

    guess = pd.Series(["a", pd.NA, "b", pd.NA], dtype="string")
    secret = pd.Series(["a", "x", pd.NA, pd.NA], dtype="string")
    assert _correct(guess, secret, False, 0.05).tolist() == [True, False, False, True]
