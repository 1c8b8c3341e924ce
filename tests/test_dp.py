"""Differential privacy of the autoregressive table synthesizer: the accountant's (ε, δ), what
the encoding may release, the privacy/utility direction, and ε in provenance and manifest."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import palmerpenguins
import pandas as pd
import pyarrow.parquet as pq
import pytest

from synthloop.errors import ConfigError
from synthloop.generate import dp
from synthloop.generate.autoregressive import RARE, AutoregressiveTable
from synthloop.generate.relational import RelationalSynthesizer
from synthloop.measures.accuracy import binned_accuracy
from synthloop.measures.columns import infer_column_types
from synthloop.records.relational import RelationalSchema, TableSpec

FAST_DP = dict(dp_epochs=8, threads=1)


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    df = palmerpenguins.load_penguins().sample(frac=1, random_state=0).reset_index(drop=True)
    df["tag"] = "common"
    df.loc[0, "tag"] = "VIP-0001"  # one row's unique value: DP must not release it
    return df


@pytest.mark.parametrize("eps", [0.5, 4.0])
def test_calibration_spends_at_most_epsilon_and_codec_its_share(eps):
    z_c, z = dp.calibrate(eps, 1e-5, 0.3, 0.25, 80)
    total = dp.rdp_epsilon([(z_c, 1.0, 1), (z, 0.25, 80)], 1e-5)
    assert total <= eps * 1.001 and total > eps * 0.95
    assert dp.rdp_epsilon([(z_c, 1.0, 1)], 1e-5) <= 0.3 * eps * 1.001
    # more budget, less noise
    z_c2, z2 = dp.calibrate(eps * 4, 1e-5, 0.3, 0.25, 80)
    assert z_c2 < z_c and z2 < z


def test_private_fit_records_its_spend_and_releases_no_rare_value(penguins):
    m = AutoregressiveTable(epsilon=1.0, **FAST_DP).fit(penguins, seed=0)
    spend = m.privacy.to_dict()
    assert spend["epsilon"] <= 1.0 + 1e-3 and spend["delta"] == pytest.approx(1 / 3440, rel=1e-3)
    assert spend["steps"] == 8 * 4 and spend["noise_multiplier"] > 0.5
    tag = next(c for c in m.codec.columns if c.names == ["tag"])
    assert "VIP-0001" not in tag.values and tag.rare_pool == [RARE]
    out = m.sample(2000, seed=1)
    assert "VIP-0001" not in set(out.tag)
    # numbers come from the public grid, not from the rows: edges are grid points and no
    # sampled value copies a real one
    grid = set(dp.number_grid())
    mass = next(c for c in m.codec.columns if c.names == ["body_mass_g"])
    assert mass.sorted_x is None and set(mass.edges) <= grid
    real = set(penguins.bill_length_mm.dropna())
    drawn = out.bill_length_mm.dropna()
    assert drawn.isin(real).mean() < 0.2  # rounding to 6 decimals never lands on 1-decimal reals
    assert m.sample(50, seed=1).equals(m.sample(50, seed=1))
    assert m.fingerprint() != AutoregressiveTable(**FAST_DP).fit(penguins, seed=0).fingerprint()


def test_public_categories_are_kept_whatever_their_count(penguins):
    m = AutoregressiveTable(epsilon=1.0, public_categories={"island": ["Biscoe", "Dream",
                                                                       "Torgersen", "Atlantis"]},
                            **FAST_DP).fit(penguins, seed=0)
    island = next(c for c in m.codec.columns if c.names == ["island"])
    assert set(island.values) == {"Biscoe", "Dream", "Torgersen", "Atlantis"}


def test_more_budget_means_more_utility(penguins):
    train, hold = penguins.iloc[:240], penguins.iloc[240:]
    types = infer_column_types(train)

    def acc(eps):
        m = AutoregressiveTable(epsilon=eps, dp_epochs=20, threads=1).fit(train, seed=0)
        return binned_accuracy(hold, m.sample(len(hold), seed=1), types)["overall"]

    low, high = acc(0.3), acc(50.0)
    assert high > low + 0.1, (low, high)


@pytest.mark.parametrize("kwargs, field", [({"epsilon": 0}, "epsilon"),
                                           ({"epsilon": -1}, "epsilon"),
                                           ({"epsilon": 1, "delta": 1.5}, "delta")])
def test_bad_budgets_are_config_errors(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        AutoregressiveTable(**kwargs)


def test_infinite_epsilon_is_the_ordinary_fit():
    assert AutoregressiveTable(epsilon=math.inf).epsilon is None


def test_linked_tables_refuse_epsilon():
    schema = RelationalSchema([TableSpec("p", key="id"),
                               TableSpec("c", parent="p", foreign_key="pid")])
    with pytest.raises(ConfigError, match="per entity"):
        RelationalSynthesizer(schema, options={"epsilon": 1.0})


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "synthloop.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_cli_writes_epsilon_into_every_record_and_the_manifest(penguins, tmp_path):
    real = tmp_path / "penguins.csv"
    penguins.drop(columns="tag").to_csv(real, index=False)
    out = tmp_path / "syn"
    r = _cli("generate", "--model", "auto", "--table", str(real), "--n", "200", "--out",
             str(out), "--epsilon", "2", "--delta", "1e-5")
    assert r.returncode == 0, r.stderr[-2000:]
    table = pq.read_table(out)
    gens = {json.loads(g)["decoding"]["differential_privacy"]["epsilon"]
            for g in table.column("generator").to_pylist()}
    assert len(gens) == 1 and 1.9 < gens.pop() <= 2.0
    r = _cli("provenance", "manifest", str(out))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "_croissant.json").read_text())
    [guarantee] = manifest["disclosure"]["differential_privacy"]
    assert guarantee["delta"] == 1e-5 and guarantee["records"] == 200
    bad = _cli("generate", "--model", "auto", "--table", str(real), "--n", "10", "--out",
               str(tmp_path / "x"), "--epsilon", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "epsilon must be > 0" in lines[0]
