"""Attack-based privacy risk of a synthetic table: singling out, linkability, attribute
inference (Anonymeter's method: Giomi et al., "A Unified Framework for Quantifying Privacy Risk
in Synthetic Data", PoPETs 2023 — our own implementation) and membership inference.

Each attack is run twice with the synthetic rows as the attacker's only knowledge: against
*original* rows (the rows the generator was fitted on) and against *control* rows (real rows
from the same source that the generator never saw). An attack that works equally well on
both learns what the data says about the population, not about the people in it; only the
excess on the original rows is a privacy risk::

    risk = (rate_original - rate_control) / (1 - rate_control)

with a 95% interval from Newcombe's hybrid score interval for the difference of two
proportions (Wilson intervals on each side; Anonymeter propagates the two Wilson errors
instead), divided by ``1 - rate_control``. A naive attacker (random guesses) is measured too:
an attack not better than it says nothing either way.

Distances are the audit's DCR distance (:mod:`synthloop.measures.dcr`: numbers scaled by
the original rows' range, categories equal or not, Gower-like, exact nearest neighbours).
Sizes: every attack samples at most ``n_attacks`` targets per side; singling out compares
the original rows at the control set's size, so "exactly one match" means the same on both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from synthloop.measures.dcr import (
    DistanceSpace,
    nearest_neighbours,
    nearest_records,
    numeric_block,
)
from synthloop.measures.intervals import Z95 as _Z95
from synthloop.measures.intervals import Rate, wilson

__all__ = ["AttackRisk", "Rate", "excess_risk", "inference_risk", "linkability_risk",
           "membership_auc", "singling_out_risk", "wilson"]

_CONTINUOUS = ("numerical", "datetime")


@dataclass(frozen=True)
class AttackRisk:
    """One attack's outcome: success rates on the original and control rows, the naive
    attacker's rate on the original rows, and the risk with its 95% interval (range
    [-1, 1]; 0 = nothing learnt about the original rows beyond the population)."""

    attack: str
    original: Rate
    control: Rate
    naive: Rate
    risk: float
    low: float
    high: float
    detail: dict

    def as_dict(self) -> dict:
        return asdict(self)


def excess_risk(original: Rate, control: Rate) -> tuple[float, float, float]:
    """``(risk, low, high)``: the original rows' excess success over the control rows, as a
    share of what the control rows leave to gain (see the module docstring)."""
    if original.n == 0 or control.n == 0:
        return float("nan"), -1.0, 1.0
    p1, p2 = original.rate, control.rate
    d = p1 - p2
    lo = d - math.sqrt((p1 - original.low) ** 2 + (control.high - p2) ** 2)
    hi = d + math.sqrt((original.high - p1) ** 2 + (p2 - control.low) ** 2)
    return _as_risk((d, lo, hi), p2)


def _as_risk(diffs: tuple[float, float, float], control_rate: float
             ) -> tuple[float, float, float]:
    """Differences of rates as shares of what the control rate leaves, clipped to [-1, 1]."""
    room = max(1 - control_rate, 1e-12)
    return tuple(float(min(1.0, max(-1.0, v / room))) for v in diffs)


def _risk(attack: str, ok_orig: np.ndarray, ok_ctrl: np.ndarray, ok_naive: np.ndarray,
          detail: dict) -> AttackRisk:
    o = wilson(int(ok_orig.sum()), len(ok_orig))
    c = wilson(int(ok_ctrl.sum()), len(ok_ctrl))
    r, lo, hi = excess_risk(o, c)
    return AttackRisk(attack, o, c, wilson(int(ok_naive.sum()), len(ok_naive)), r, lo, hi,
                      detail)


def _columns(types: dict[str, str]) -> tuple[list[str], list[str]]:
    num = [c for c, t in types.items() if t in _CONTINUOUS]
    cat = [c for c, t in types.items() if t in ("categorical", "boolean")]
    return num, cat


def _sample(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    n = min(n, len(df))
    return df.iloc[np.sort(rng.choice(len(df), n, replace=False))].reset_index(drop=True)


# --- singling out ----------------------------------------------------------------------------

class _Encoded:
    """A frame as one float matrix: numbers (NaN missing) and category codes (NaN missing)."""

    def __init__(self, space: DistanceSpace, df: pd.DataFrame):
        num, cat = space.encode(df)
        cat = cat.astype(np.float64)
        cat[cat < 0] = np.nan
        self.x = np.hstack([num, cat])


def _matches(x: np.ndarray, pred: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
    """Rows of ``x`` satisfying every condition: (column, op 0 ==, 1 <=, 2 >=, value)."""
    cols, ops, vals = pred
    sub = x[:, cols]
    with np.errstate(invalid="ignore"):
        ok = np.where(ops == 0, sub == vals, np.where(ops == 1, sub <= vals, sub >= vals))
    return int(ok.all(axis=1).sum())


def singling_out_risk(original: pd.DataFrame, synthetic: pd.DataFrame, control: pd.DataFrame,
                      types: dict[str, str], *, n_attacks: int = 500, n_columns: int = 3,
                      seed: int = 0) -> AttackRisk:
    """Multivariate singling out: predicates on ``n_columns`` columns taken from synthetic
    rows (a category equals the row's; a number at most or at least the row's value, towards
    the nearer tail of the synthetic median) that match exactly one synthetic row; an attack
    succeeds when its predicate matches exactly one row of the original (sampled to the
    control's size) or of the control rows. The naive attacker builds predicates from values
    drawn column by column. Up to ``n_attacks`` distinct predicates, from at most 50 ×
    ``n_attacks`` tries."""
    rng = np.random.default_rng(seed)
    num, cat = _columns(types)
    space = DistanceSpace.fit(original, num, cat, [synthetic, control])
    orig = _sample(original, len(control), rng)
    xs, xo, xc = (_Encoded(space, df).x for df in (synthetic, orig, control))
    n_cols = len(num) + len(cat)
    is_num = np.r_[np.ones(len(num), bool), np.zeros(len(cat), bool)]
    k = min(n_columns, n_cols)
    with np.errstate(all="ignore"):
        median = np.nanmedian(xs, axis=0) if len(xs) else np.zeros(n_cols)

    def predicates(row_of) -> list:
        out, seen = [], set()
        for _ in range(50 * n_attacks):
            if len(out) >= n_attacks:
                break
            row = row_of()
            present = np.flatnonzero(~np.isnan(row))
            if len(present) < k:
                continue
            cols = np.sort(rng.choice(present, k, replace=False))
            vals = row[cols]
            ops = np.where(is_num[cols], np.where(vals <= median[cols], 1, 2), 0)
            key = (cols.tobytes(), ops.tobytes(), vals.tobytes())
            if key in seen:
                continue
            seen.add(key)
            pred = (cols, ops, vals)
            if _matches(xs, pred) == 1:
                out.append(pred)
        return out

    main = predicates(lambda: xs[rng.integers(len(xs))])
    naive = predicates(lambda: xs[rng.integers(len(xs), size=n_cols), np.arange(n_cols)])
    ok_o = np.array([_matches(xo, p) == 1 for p in main], bool)
    ok_c = np.array([_matches(xc, p) == 1 for p in main], bool)
    ok_n = np.array([_matches(xo, p) == 1 for p in naive], bool)
    return _risk("singling_out", ok_o, ok_c, ok_n,
                 {"n_columns": k, "predicates": len(main), "rows_per_side": len(xo)})


# --- linkability -----------------------------------------------------------------------------

class _Shuffled:
    """The synthetic rows in a seeded random order, so that among rows at equal distance the
    attacker picks one at random (not the first in file order); positions map back."""

    def __init__(self, synthetic: pd.DataFrame, rng: np.random.Generator):
        self.order = rng.permutation(len(synthetic))
        self.rows = synthetic.iloc[self.order].reset_index(drop=True)

    def neighbours(self, space: DistanceSpace, query: pd.DataFrame, k: int) -> np.ndarray:
        return self.order[nearest_neighbours(space, query, self.rows, k=k, n_jobs=1)[1]]


def linkability_risk(original: pd.DataFrame, synthetic: pd.DataFrame, control: pd.DataFrame,
                     types: dict[str, str], *, aux_columns: tuple[list[str], list[str]]
                     | None = None, n_attacks: int = 500, n_neighbors: int = 1,
                     seed: int = 0) -> AttackRisk:
    """An attacker holds two halves of a target's columns (``aux_columns``; default: the
    compared columns split alternately) and links them through the synthetic rows: the
    attack succeeds when the ``n_neighbors`` nearest synthetic rows on one half and on the
    other share a row. The naive attacker picks rows at random."""
    rng = np.random.default_rng(seed)
    if aux_columns is None:
        cols = [c for c, t in types.items() if t != "id"]
        aux_columns = (cols[0::2], cols[1::2])
    a, b = (list(x) for x in aux_columns)
    if not a or not b or set(a) & set(b):
        raise ValueError("linkability needs two disjoint, non-empty column sets")
    spaces = []
    for part in (a, b):
        num, cat = _columns({c: types[c] for c in part})
        spaces.append(DistanceSpace.fit(original, num, cat, [synthetic, control]))
    k = min(n_neighbors, len(synthetic))

    shuffled = _Shuffled(synthetic, rng)

    def linked(targets: pd.DataFrame) -> np.ndarray:
        na = shuffled.neighbours(spaces[0], targets, k)
        nb = shuffled.neighbours(spaces[1], targets, k)
        return np.array([bool(np.intersect1d(x, y).size) for x, y in zip(na, nb, strict=True)])

    t_o = _sample(original, n_attacks, rng)
    t_c = _sample(control, n_attacks, rng)
    ra = rng.integers(len(synthetic), size=(len(t_o), k))
    rb = rng.integers(len(synthetic), size=(len(t_o), k))
    naive = np.array([bool(np.intersect1d(x, y).size) for x, y in zip(ra, rb, strict=True)])
    return _risk("linkability", linked(t_o), linked(t_c), naive,
                 {"aux_columns": [a, b], "n_neighbors": k})


# --- attribute inference ---------------------------------------------------------------------

def _correct(guess: pd.Series, secret: pd.Series, continuous: bool, tolerance: float
             ) -> np.ndarray:
    g_na, s_na = guess.isna().to_numpy(), secret.isna().to_numpy()
    if continuous:
        g = _as_float(guess)
        s = _as_float(secret)
        with np.errstate(invalid="ignore"):
            close = np.abs(g - s) <= tolerance * np.abs(s)
    else:  # compared where both are present: a pandas NA does not compare to anything
        both = ~(g_na | s_na)
        close = np.zeros(len(guess), dtype=bool)
        close[both] = guess.astype(object).to_numpy()[both] == \
            secret.astype(object).to_numpy()[both]
    return np.where(g_na | s_na, g_na & s_na, close)


def _as_float(s: pd.Series) -> np.ndarray:
    return numeric_block(s.to_frame("v"), ["v"])[:, 0]


def inference_risk(original: pd.DataFrame, synthetic: pd.DataFrame, control: pd.DataFrame,
                   types: dict[str, str], *, secrets: list[str] | None = None,
                   n_attacks: int = 500, tolerance: float = 0.05, max_secrets: int = 10,
                   seed: int = 0) -> AttackRisk:
    """An attacker knows every compared column of a target but one (the secret) and guesses
    it from the nearest synthetic row on the others; a guess is right when it equals the
    secret (a number: within ``tolerance`` × |secret|; missing = missing). Pooled over the
    ``secrets`` (default: up to ``max_secrets`` compared columns, a seeded choice), each with
    the same targets; per-secret risks in ``detail``. The naive attacker guesses a random
    synthetic row's value."""
    rng = np.random.default_rng(seed)
    cols = [c for c, t in types.items() if t != "id"]
    if secrets is None:
        secrets = cols if len(cols) <= max_secrets else \
            [cols[i] for i in np.sort(rng.choice(len(cols), max_secrets, replace=False))]
    t_o = _sample(original, n_attacks, rng)
    t_c = _sample(control, n_attacks, rng)
    shuffled = _Shuffled(synthetic, rng)
    oks: dict[str, list[np.ndarray]] = {"o": [], "c": [], "n": []}
    per = {}
    for secret in secrets:
        aux = [c for c in cols if c != secret]
        if not aux:
            continue
        num, cat = _columns({c: types[c] for c in aux})
        space = DistanceSpace.fit(original, num, cat, [synthetic, control])
        cont = types[secret] in _CONTINUOUS
        res = []
        for t in (t_o, t_c):
            idx = shuffled.neighbours(space, t, 1)[:, 0]
            guess = synthetic[secret].iloc[idx].reset_index(drop=True)
            res.append(_correct(guess, t[secret].reset_index(drop=True), cont, tolerance))
        rand = synthetic[secret].iloc[rng.integers(len(synthetic), size=len(t_o))]
        res.append(_correct(rand.reset_index(drop=True), t_o[secret].reset_index(drop=True),
                            cont, tolerance))
        for key, v in zip("ocn", res, strict=True):
            oks[key].append(v)
        one = _risk("inference", *res, {})
        per[secret] = {"risk": one.risk, "low": one.low, "high": one.high,
                       "original_rate": one.original.rate, "control_rate": one.control.rate}
    if not oks["o"]:
        raise ValueError("inference needs at least two compared columns")
    # one target answers every secret: its answers are not independent, so the interval is
    # the clustered one (per-target success shares, normal approximation)
    o, c, n = (np.column_stack(oks[k]).astype(float) for k in "ocn")
    ro, rc, rn = (_clustered(x) for x in (o, c, n))
    d = ro.rate - rc.rate
    half = _Z95 * math.sqrt(o.mean(axis=1).var(ddof=1) / len(o)
                            + c.mean(axis=1).var(ddof=1) / len(c)) if min(len(o), len(c)) > 1 \
        else math.inf
    return AttackRisk("inference", ro, rc, rn, *_as_risk((d, d - half, d + half), rc.rate),
                      {"secrets": per, "tolerance": tolerance, "targets_per_side": len(t_o)})


def _clustered(x: np.ndarray) -> Rate:
    """A rate over targets × secrets, its 95% interval from the per-target shares."""
    share = x.mean(axis=1)
    p = float(share.mean()) if len(share) else float("nan")
    half = _Z95 * float(share.std(ddof=1)) / math.sqrt(len(share)) if len(share) > 1 \
        else 1.0
    return Rate(int(x.sum()), int(x.size), p, max(0.0, p - half), min(1.0, p + half))


# --- membership inference --------------------------------------------------------------------

def membership_auc(original: pd.DataFrame, synthetic: pd.DataFrame, control: pd.DataFrame,
                   types: dict[str, str], *, n_attacks: int = 1000, seed: int = 0) -> dict:
    """Distance-based membership inference: a real row is called a member of the training
    rows the closer it lies to a synthetic row. ROC AUC of that call on members (original
    rows) against non-members (control rows), equal samples of at most ``n_attacks``; 0.5 =
    membership cannot be told; with the Hanley–McNeil standard error. Returns ``auc``,
    ``low``, ``high`` (95%), ``se``, ``rows_per_side``."""
    rng = np.random.default_rng(seed)
    n = min(n_attacks, len(original), len(control))
    m, o = _sample(original, n, rng), _sample(control, n, rng)
    num, cat = _columns(types)
    space = DistanceSpace.fit(original, num, cat, [synthetic, control])
    d_m = nearest_records(space, m, synthetic, n_jobs=1)[:, 0]
    d_o = nearest_records(space, o, synthetic, n_jobs=1)[:, 0]
    # AUC = P(member closer) + ½ P(tie), by ranks
    both = np.r_[-d_m, -d_o]
    ranks = pd.Series(both).rank(method="average").to_numpy()
    auc = float((ranks[:n].sum() - n * (n + 1) / 2) / (n * n)) if n else float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    se = math.sqrt(max(auc * (1 - auc) + (n - 1) * (q1 - auc * auc)
                       + (n - 1) * (q2 - auc * auc), 0.0) / (n * n)) if n else float("nan")
    return {"auc": auc, "low": max(0.0, auc - _Z95 * se), "high": min(1.0, auc + _Z95 * se),
            "se": se, "rows_per_side": n}
