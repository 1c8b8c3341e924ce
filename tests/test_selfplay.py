from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthloop.records import Generator
from synthloop.selfplay import (
    KuhnEquilibriumPolicy,
    KuhnPoker,
    Negotiation,
    RandomPolicy,
    TicTacToe,
    TicTacToeHeuristicPolicy,
    episode_records,
    export_rl,
    export_sft,
    parse_action,
    run_episodes,
)
from synthloop.selfplay.curriculum import Curriculum, Level, collapse_warnings, elo_update
from synthloop.selfplay.games import INVALID_PENALTY
from synthloop.selfplay.policies import Decision
from synthloop.selfplay.runner import RoleBaseline, play_episode, summarise
from synthloop.selfplay.session import SessionConfig, mean_payoff, run_session

GEN = Generator("test", "scripted", {}, 0)


def _kuhn_value(p0: KuhnEquilibriumPolicy, p1: KuhnEquilibriumPolicy) -> float:
    """Player 0's exact expected payoff, enumerating deals and betting lines."""
    game = KuhnPoker()
    total = 0.0
    from synthloop.selfplay.games import KuhnState

    for c0, c1 in itertools.permutations(range(3), 2):
        stack = [(KuhnState((c0, c1)), 1 / 6)]
        while stack:
            state, prob = stack.pop()
            if game.is_terminal(state):
                total += prob * game.returns(state)[0]
                continue
            player = game.current_player(state)
            pol = (p0, p1)[player]
            p = pol.prob_aggressive(state.cards[player], state.history)
            facing_bet = state.history.endswith("b")
            aggressive, passive = ("call", "fold") if facing_bet else ("bet", "check")
            stack.append((game.step(state, aggressive), prob * p))
            stack.append((game.step(state, passive), prob * (1 - p)))
    return total


@pytest.mark.parametrize("alpha", [0.0, 1 / 6, 1 / 3])
def test_kuhn_equilibrium_value_is_minus_one_eighteenth(alpha):
    assert _kuhn_value(KuhnEquilibriumPolicy(alpha), KuhnEquilibriumPolicy(0.0)) == \
        pytest.approx(-1 / 18, abs=1e-12)


def test_simulated_equilibrium_payoff_matches_game_value():
    game = KuhnPoker()
    n = 20000
    v = mean_payoff(game, KuhnEquilibriumPolicy(0.2), KuhnEquilibriumPolicy(0.0), n, seed=1)
    assert abs(v - (-1 / 18)) < 4 * 1.3 / np.sqrt(n)


def test_kuhn_self_play_records_are_valid_and_zero_sum():
    game = KuhnPoker()
    eq = KuhnEquilibriumPolicy(0.1)
    eps = run_episodes(game, eq, eq, 300, seed=3)
    table = episode_records(eps, generator=GEN, run_id="t")
    rows = table.to_pylist()
    assert all(r["valid"] for r in rows)
    by_game: dict[int, dict[int, float]] = {}
    for r in rows:
        by_game.setdefault(r["game_id"], {})[r["role"]] = r["reward"]
        assert r["origin"] == "synthetic" and r["env_id"] == "kuhn-poker-v1"
        assert r["observation"] in r["text"] and r["action"] in ("check", "bet", "call", "fold")
    assert len(by_game) == 300
    assert all(sum(v.values()) == pytest.approx(0.0) for v in by_game.values() if len(v) == 2)
    assert all(len(v) == 2 for v in by_game.values())  # both players act in every Kuhn game


def test_role_conditioned_advantages_use_per_role_ema():
    game = KuhnPoker()
    eps = run_episodes(game, RandomPolicy(), RandomPolicy(), 50, seed=0)
    table = episode_records(eps, generator=GEN, run_id="t", baseline_decay=0.8)
    base = RoleBaseline(0.8)
    expect = {}
    for ep in eps:
        expect[ep.game_id] = [base.advantage(r, ep.returns[r]) for r in (0, 1)]
    for r in table.to_pylist():
        assert r["advantage"] == pytest.approx(expect[r["game_id"]][r["role"]])
    # the first game's advantage is its return (baselines start at 0)
    assert expect[0] == pytest.approx(list(eps[0].returns))


def test_seeded_games_repeat():
    game = TicTacToe()
    a = [e.returns for e in run_episodes(game, RandomPolicy(), RandomPolicy(), 30, seed=5)]
    b = [e.returns for e in run_episodes(game, RandomPolicy(), RandomPolicy(), 30, seed=5)]
    c = [e.returns for e in run_episodes(game, RandomPolicy(), RandomPolicy(), 30, seed=6)]
    assert a == b and a != c


class _Babbler:
    name = version = "babbler"

    def act(self, game, state, player, rng):
        return Decision("hmm", "I would like to think about it")


def test_invalid_move_penalises_the_mover_and_ends_the_game():
    ep = play_episode(KuhnPoker(), _Babbler(), RandomPolicy(), game_id=0, seed=0,
                      learner_role=0)
    assert ep.invalid and ep.returns == (INVALID_PENALTY, 0.0) and ep.winner == 1
    assert len(ep.turns) == 1 and not ep.turns[0].valid
    assert summarise([ep])["invalid_move_rate"] == 1.0
    assert collapse_warnings([summarise([ep])])  # flagged


def test_parse_action():
    assert parse_action("I bet. [bet]", ["check", "bet"]) == "bet"
    assert parse_action("[check] no wait [BET]", ["check", "bet"]) == "bet"
    assert parse_action("[raise]", ["check", "bet"]) is None
    assert parse_action("keep [keep 4]", ["accept", "keep 4"]) == "keep 4"


def test_tictactoe_and_negotiation_rules():
    g = TicTacToe()
    s = g.new_state(np.random.default_rng(0))
    for a in ["0", "3", "1", "4", "2"]:
        s = g.step(s, a)
    assert g.is_terminal(s) and g.returns(s) == (1.0, -1.0)
    with pytest.raises(ValueError):
        g.step(g.new_state(None), "9")
    n = Negotiation(pool=10, max_rounds=2)
    s = n.new_state(None)
    s = n.step(s, "keep 6")  # pool 9 after the burn: p0 keeps 6, offers 3
    s = n.step(s, "accept")
    assert n.returns(s) == pytest.approx(((6 - 3) / 10, -(6 - 3) / 10))
    s = n.step(n.step(n.new_state(None), "keep 8"), "keep 5")
    assert n.legal_actions(s) == ["accept", "reject"]  # no proposals left
    assert n.returns(n.step(s, "reject")) == (0.0, 0.0)


def test_curriculum_keeps_win_rate_in_band():
    game = TicTacToe()
    learner = TicTacToeHeuristicPolicy(0.6)
    levels = [Level(o.version, o, game) for o in
              (RandomPolicy(), TicTacToeHeuristicPolicy(0.3), TicTacToeHeuristicPolicy(1.0))]
    cur = Curriculum(levels, band=(0.3, 0.7), window=40)
    rng = np.random.default_rng(0)
    for i in range(1600):
        ep = play_episode(game, learner, cur.current().opponent, game_id=i,
                          seed=int(rng.integers(2**31)), learner_role=i % 2)
        cur.record(ep.learner_score)
    # it left the easy level, and once settled the win rate stays in band
    assert cur.history[0]["level"] == "random" and cur.history[0]["moved"] == 1
    settled = cur.history[5:]
    in_band = [0.3 <= h["win_rate"] <= 0.7 for h in settled]
    assert np.mean(in_band) >= 0.8
    assert cur.current().name != "random"


def test_elo_update_is_zero_sum_and_directional():
    a, b = elo_update(1000, 1000, 1.0)
    assert a > 1000 > b and a + b == pytest.approx(2000)


def test_exports_drop_zero_advantage_and_keep_learner_turns():
    game = KuhnPoker()
    eps = run_episodes(game, KuhnEquilibriumPolicy(), RandomPolicy(), 200, seed=2)
    table = episode_records(eps, generator=GEN, run_id="t")
    rl = export_rl(table)
    sft = export_sft(table)
    learner_turns = [r for r in table.to_pylist() if r["actor"] == "learner"]
    assert 0 < len(rl) <= len(learner_turns)
    assert all(abs(r["advantage"]) > 0 for r in rl)
    assert all(r["completion"].startswith("[") for r in sft) and len(sft) < len(rl)


def test_session_writes_records_exports_and_summary(tmp_path):
    cfg = SessionConfig(game="kuhn-poker", episodes=120, out=str(tmp_path), policy="equilibrium",
                        opponent="random", seed=4)
    summary = run_session(cfg)
    assert summary["zero_sum"] and summary["invalid_move_rate"] == 0.0
    t = pq.read_table(tmp_path / "turns.parquet")
    assert t.num_rows == summary["records"]
    assert set(t.column("actor").to_pylist()) == {"learner", "opponent"}
    assert json.loads((tmp_path / "summary.json").read_text())["elo"]
    rl_lines = (tmp_path / "rl.jsonl").read_text().splitlines()
    assert rl_lines and "advantage" in json.loads(rl_lines[0])


def test_reinforce_raises_win_rate_against_random():
    from synthloop.selfplay.train import RecipeConfig, train_selfplay

    res = train_selfplay(RecipeConfig(game="kuhn-poker", updates=20, games_per_update=32,
                                      eval_every=20, eval_games=300))
    first, last = res["curve"][0], res["curve"][-1]
    assert last["mean_return"] > first["mean_return"] + 0.1
    assert last["win_rate"] > first["win_rate"] + 0.05
