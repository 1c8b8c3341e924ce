"""The autoregressive table synthesizer: encodings round-trip, constraints, fixed combinations,
conditional sampling, rebalancing, rare categories, determinism, and that it learns the
non-Gaussian dependence the copula cannot."""

from __future__ import annotations

import json

import numpy as np
import palmerpenguins
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from synthloop.cli import app
from synthloop.errors import ConfigError, InputError
from synthloop.generate.autoregressive import RARE, AutoregressiveTable
from synthloop.generate.copula import GaussianCopula
from synthloop.generate.tables import resolve_table_model, table_synthesizer
from synthloop.measures.accuracy import binned_accuracy
from synthloop.measures.columns import infer_column_types

FAST = dict(max_epochs=40, patience=4, hidden=64, threads=1)


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return palmerpenguins.load_penguins()


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    """600 rows of every kind of column: integers, decimals, dates, booleans, categories with
    rare values, missing cells, a city/state pair and an id."""
    rng = np.random.default_rng(7)
    n = 600
    cities = {"Austin": "TX", "Dallas": "TX", "Reno": "NV", "Boise": "ID", "Salem": "OR"}
    city = rng.choice(list(cities), n, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    age = rng.integers(18, 90, n)
    income = np.round(rng.lognormal(10, 0.5, n) + age * 100, 2)
    opened = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.6, 0.3, 0.1]).astype(object)
    plan[:3] = ["legacy-a", "legacy-b", "legacy-c"]  # rare: seen once each
    score = rng.normal(600, 50, n)
    score[rng.random(n) < 0.15] = np.nan
    return pd.DataFrame({
        "customer": [f"c{i:04d}" for i in range(n)], "city": city,
        "state": [cities[c] for c in city], "age": age, "income": income,
        "opened": opened, "active": rng.random(n) < 0.7, "plan": plan, "score": score})


@pytest.fixture(scope="module")
def mixed_model(mixed) -> AutoregressiveTable:
    return AutoregressiveTable(constraints=["age >= 18"], fixed_combinations=[["city", "state"]],
                               **FAST).fit(mixed, seed=0)


def test_round_trip_keeps_types_ranges_precision_and_missing(mixed, mixed_model):
    out = mixed_model.sample(1000, seed=1)
    assert list(out.columns) == list(mixed.columns)
    assert infer_column_types(out) == infer_column_types(mixed)
    assert out["age"].dtype == mixed["age"].dtype  # integers stay integers
    assert pd.api.types.is_datetime64_any_dtype(out["opened"])
    assert (out["opened"] == out["opened"].dt.normalize()).all()  # day resolution kept
    assert out["active"].dtype == bool
    # decimals keep two places and no value leaves the real range
    assert np.allclose(out["income"], out["income"].round(2))
    for c in ("age", "income", "score", "opened"):
        assert out[c].min() >= mixed[c].min() and out[c].max() <= mixed[c].max(), c
    assert 0.08 < out["score"].isna().mean() < 0.25  # real share 0.15
    assert out["customer"].is_unique and not set(out["customer"]) & set(mixed["customer"])


def test_fixed_combinations_and_constraints_hold(mixed, mixed_model):
    out = mixed_model.sample(800, seed=2)
    real_pairs = set(zip(mixed["city"], mixed["state"], strict=True))
    assert set(zip(out["city"], out["state"], strict=True)) <= real_pairs
    assert (out["age"] >= 18).all()
    strict = AutoregressiveTable(constraints=["age >= 40"], **FAST).fit(mixed, seed=0)
    assert (strict.sample(300, seed=0)["age"] >= 40).all()


def test_rare_categories_are_sampled_among_real_ones_or_masked(mixed, mixed_model):
    out = mixed_model.sample(3000, seed=3)
    assert set(out["plan"]) <= set(mixed["plan"])
    masked = AutoregressiveTable(rare="mask", **FAST).fit(mixed, seed=0).sample(3000, seed=3)
    assert RARE in set(masked["plan"])
    assert not {"legacy-a", "legacy-b", "legacy-c"} & set(masked["plan"])


def test_same_seed_same_bytes_other_seed_other_rows(mixed):
    a = AutoregressiveTable(**FAST).fit(mixed, seed=5)
    b = AutoregressiveTable(**FAST).fit(mixed, seed=5)
    assert a.fingerprint() == b.fingerprint()
    assert a.sample(200, seed=9).to_csv() == b.sample(200, seed=9).to_csv()
    assert a.sample(200, seed=9).to_csv() != a.sample(200, seed=10).to_csv()
    assert AutoregressiveTable(**FAST).fit(mixed, seed=6).fingerprint() != a.fingerprint()


def test_early_stopping_keeps_the_best_held_out_loss(penguins):
    m = AutoregressiveTable(max_epochs=300, patience=3, hidden=64, threads=1).fit(penguins)
    losses = [h["val_loss"] for h in m.history]
    assert m.epochs < 300 and m.epochs == len(losses)
    assert m.val_loss == pytest.approx(min(losses))
    assert losses.index(min(losses)) == m.epochs - 1 - 3  # stopped `patience` epochs later


def test_conditions_fix_columns_row_by_row_and_the_rest_follow(penguins):
    m = AutoregressiveTable(**FAST).fit(penguins, seed=0)
    out = m.sample(600, seed=1, conditions={"species": "Gentoo"})
    assert (out["species"] == "Gentoo").all()
    real = penguins.groupby("species")["body_mass_g"].mean()
    # Gentoo penguins are ~1,400 g heavier than the others: the drawn masses follow the fix
    assert abs(out["body_mass_g"].mean() - real["Gentoo"]) < 250
    assert (out["island"] == "Biscoe").mean() > 0.95  # Gentoo live only on Biscoe
    frame = pd.DataFrame({"species": ["Adelie", "Gentoo"] * 50, "sex": ["male"] * 100})
    out = m.sample(100, seed=2, conditions=frame)
    assert out["species"].tolist() == frame["species"].tolist()
    assert (out["sex"] == "male").all()


def test_rebalance_sets_a_category_share(penguins):
    m = AutoregressiveTable(**FAST).fit(penguins, seed=0)
    out = m.sample(2000, seed=4, rebalance={"species": {"Chinstrap": 0.5}})
    share = (out["species"] == "Chinstrap").mean()
    assert abs(share - 0.5) < 0.04  # real share 0.20
    rest = out.loc[out["species"] != "Chinstrap", "species"].value_counts(normalize=True)
    real = penguins.loc[penguins["species"] != "Chinstrap", "species"].value_counts(
        normalize=True)
    assert abs(rest["Adelie"] - real["Adelie"]) < 0.05  # the others keep their ratio


def test_learns_dependence_the_copula_cannot():
    """A ring: x and y uncorrelated but dependent, plus a category that picks the ring's
    half. The copula (correlations of normal scores) draws a blob; ours draws the ring."""
    def ring(n, seed):
        rng = np.random.default_rng(seed)
        t = rng.uniform(0, 2 * np.pi, n)
        r = 1 + rng.normal(0, 0.05, n)
        return pd.DataFrame({"x": r * np.cos(t), "y": r * np.sin(t),
                             "half": np.where(np.sin(t) > 0, "top", "bottom")})
    train, ref = ring(3000, 0), ring(3000, 1)
    types = infer_column_types(train)
    ours = AutoregressiveTable(threads=1, max_epochs=60).fit(train, seed=0).sample(3000, seed=0)
    cop = GaussianCopula().fit(train, seed=0).sample(3000, seed=0)
    acc_ours = binned_accuracy(ref, ours, types)["bivariate"]
    acc_cop = binned_accuracy(ref, cop, types)["bivariate"]
    acc_real = binned_accuracy(ref, train, types)["bivariate"]
    assert acc_ours > acc_cop + 0.08, (acc_ours, acc_cop)
    assert acc_ours > acc_real - 0.08, (acc_ours, acc_real)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n_bins=1), "n_bins"), (dict(rare="drop"), "rare"), (dict(dropout=0.95), "dropout"),
    (dict(val_fraction=0.6), "val_fraction"), (dict(lr=0), "lr"), (dict(hidden=4), "hidden")])
def test_bad_parameters_are_one_config_error(kwargs, field):
    with pytest.raises(ConfigError, match=field) as e:
        AutoregressiveTable(**kwargs)
    assert e.value.fields == (field,)


def test_bad_input_is_one_clear_error(penguins):
    with pytest.raises(InputError, match="at least 10 rows"):
        AutoregressiveTable(**FAST).fit(penguins.head(5))
    with pytest.raises(ConfigError, match="no column 'colour'"):
        AutoregressiveTable(fixed_combinations=[["species", "colour"]]).fit(penguins)
    m = AutoregressiveTable(**FAST).fit(penguins, seed=0)
    with pytest.raises(ConfigError, match="no column 'wings'"):
        m.sample(10, conditions={"wings": 2})
    with pytest.raises(InputError, match="'species': value 'Emperor' was not seen"):
        m.sample(10, conditions={"species": "Emperor"})
    with pytest.raises(ConfigError, match="rebalance 'species': category 'Emperor'"):
        m.sample(10, rebalance={"species": {"Emperor": 0.5}})
    with pytest.raises(ConfigError, match="rows, expected n = 10"):
        m.sample(10, conditions=pd.DataFrame({"species": ["Adelie"] * 3}))


def test_auto_picks_by_size_and_other_models_refuse_its_options():
    assert resolve_table_model("auto", 99) == "gaussian-copula"
    assert resolve_table_model("auto", 100) == "autoregressive"
    assert resolve_table_model("sdv:ctgan", 5) == "sdv:ctgan"
    with pytest.raises(ConfigError, match="unknown table model 'gan'"):
        resolve_table_model("gan", 10)
    with pytest.raises(ConfigError, match="'max_seconds' is only for the autoregressive"):
        table_synthesizer("gaussian-copula", 500, max_seconds=3)
    assert isinstance(table_synthesizer("auto", 500, n_bins=8), AutoregressiveTable)


def test_cli_generate_table_with_the_autoregressive_model(tmp_path, penguins):
    real = tmp_path / "penguins.csv"
    penguins.to_csv(real, index=False)
    out = tmp_path / "syn.parquet"
    r = CliRunner().invoke(app, ["generate", "--model", "autoregressive", "--table", str(real),
                                 "--n", "120", "--out", str(out), "--seed", "3"])
    assert r.exit_code == 0, r.output
    t = pq.read_table(out)
    assert t.num_rows == 120
    gen = json.loads(t.column("generator")[0].as_py())
    assert gen["model"] == "autoregressive" and gen["decoding"]["epochs"] >= 1
    assert set(t.column("species").to_pylist()) <= set(penguins["species"])
    r = CliRunner().invoke(app, ["generate", "--model", "ctgan", "--table", str(real),
                                 "--n", "10", "--out", str(tmp_path / "x.parquet")])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "--table needs --model auto, autoregressive" in r.output.replace("\n", " ")


def test_threads_hold_for_the_fit_only(penguins):
    """torch's thread count is process-wide: a fit with ``threads`` must give it back."""
    import torch

    before = torch.get_num_threads()
    AutoregressiveTable(max_epochs=2, threads=1 if before > 1 else 2).fit(
        penguins.iloc[:60], seed=0)
    assert torch.get_num_threads() == before
