"""Play games between policies and write one record per turn, with role-conditioned
advantages (SPIRAL's RAE: a per-role exponential-moving-average baseline of the return)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from synthloop.progress import Advance
from synthloop.records.schema import Generator, text_records
from synthloop.selfplay.games import INVALID_PENALTY, Game, parse_action
from synthloop.selfplay.policies import Policy

MAX_TURNS = 50


@dataclass
class Turn:
    game_id: int
    turn: int
    role: int
    actor: str  # "learner" or "opponent"
    policy_version: str
    opponent_version: str
    observation: str
    reasoning: str
    response: str
    action: str | None
    valid: bool
    legal: tuple[str, ...] = ()


@dataclass
class Episode:
    game_id: int
    seed: int
    learner_role: int
    turns: list[Turn]
    returns: tuple[float, float]
    winner: int | None
    invalid: bool
    truncated: bool
    env_id: str

    @property
    def learner_return(self) -> float:
        return self.returns[self.learner_role]

    @property
    def learner_score(self) -> float:
        """1 for a win, 0.5 for a draw, 0 for a loss (the win rate's unit)."""
        if self.winner is None:
            return 0.5
        return 1.0 if self.winner == self.learner_role else 0.0


def play_episode(game: Game, learner: Policy, opponent: Policy, *, game_id: int, seed: int,
                 learner_role: int) -> Episode:
    """One game; an unparseable or illegal answer ends it with −1.5 for the mover, 0 for the
    other player."""
    rng = np.random.default_rng(seed)
    state = game.new_state(rng)
    seats = {learner_role: learner, 1 - learner_role: opponent}
    turns: list[Turn] = []
    invalid_by: int | None = None
    while not game.is_terminal(state) and len(turns) < MAX_TURNS:
        player = game.current_player(state)
        policy = seats[player]
        obs = game.observation(state, player)
        decision = policy.act(game, state, player, rng)
        action = parse_action(decision.text, game.legal_actions(state))
        turns.append(Turn(game_id, len(turns), player,
                          "learner" if player == learner_role else "opponent",
                          policy.version, seats[1 - player].version, obs, decision.reasoning,
                          decision.text, action, action is not None,
                          tuple(game.legal_actions(state))))
        if action is None:
            invalid_by = player
            break
        state = game.step(state, action)
    truncated = invalid_by is None and not game.is_terminal(state)
    if invalid_by is not None:
        ret = [0.0, 0.0]
        ret[invalid_by] = INVALID_PENALTY
        returns, winner = (ret[0], ret[1]), 1 - invalid_by
    elif truncated:
        returns, winner = (0.0, 0.0), None
    else:
        returns, winner = game.returns(state), game.winner(state)
    return Episode(game_id, seed, learner_role, turns, returns, winner, invalid_by is not None,
                   truncated, env_id=f"{game.name}-v1")


@dataclass
class RoleBaseline:
    """Per-role EMA of returns; ``advantage(role, r)`` is ``r`` minus the baseline before it
    is updated with ``r``."""

    decay: float = 0.95
    values: list[float] = field(default_factory=lambda: [0.0, 0.0])

    def advantage(self, role: int, ret: float) -> float:
        adv = ret - self.values[role]
        self.values[role] = self.decay * self.values[role] + (1 - self.decay) * ret
        return adv


def run_episodes(game: Game, learner: Policy, opponent: Policy | Callable[[int], Policy],
                 episodes: int, *, seed: int = 0,
                 progress: Advance | None = None) -> list[Episode]:
    """Play ``episodes`` games, the learner alternating seats (role 0 in even games).

    ``opponent`` may be a function of the game index (a curriculum or a snapshot pool).
    """
    out = []
    for i in range(episodes):
        opp = opponent(i) if callable(opponent) and not hasattr(opponent, "act") else opponent
        out.append(play_episode(game, learner, opp, game_id=i, seed=seed * 1_000_003 + i,
                                learner_role=i % 2))
        if progress:
            progress(1)
    return out


def episode_records(episodes: Sequence[Episode], *, generator: Generator, run_id: str,
                    baseline_decay: float = 0.95) -> pa.Table:
    """One record per turn (both players), with provenance.

    Fields: ``game_id``, ``turn``, ``role``, ``actor``, ``reward`` (that role's final payoff),
    ``advantage`` (role-conditioned, EMA baseline over games in order), ``observation``,
    ``reasoning``, ``response``, ``action``, ``valid``, ``env_id``, ``seed``,
    ``policy_version``, ``opponent_version``, ``truncated``; ``text`` is the observation and
    the response (the record's content).
    """
    base = RoleBaseline(baseline_decay)
    rows: list[dict] = []
    for ep in episodes:
        adv = [base.advantage(r, ep.returns[r]) for r in (0, 1)]
        for t in ep.turns:
            rows.append({**asdict(t), "reward": ep.returns[t.role], "advantage": adv[t.role],
                         "env_id": ep.env_id, "seed": ep.seed, "truncated": ep.truncated})
    texts = [f"{r['observation']}\n{r['response']}" for r in rows]
    extra = {k: [r[k] for r in rows] for k in (
        "game_id", "turn", "role", "actor", "reward", "advantage", "observation", "reasoning",
        "response", "action", "valid", "env_id", "seed", "policy_version", "opponent_version",
        "truncated")}
    return text_records(texts, origin="synthetic", generation=1, generator=generator,
                        run_id=run_id, extra=extra)


def export_sft(table: pa.Table) -> list[dict]:
    """SFT examples: the learner's valid turns in won games with a positive advantage,
    untruncated: ``{"prompt", "completion"}``."""
    rows = table.to_pylist()
    return [{"prompt": r["observation"], "completion": r["response"], "game_id": r["game_id"],
             "id": r["id"]}
            for r in rows if r["actor"] == "learner" and r["valid"] and not r["truncated"]
            and r["advantage"] > 0 and r["reward"] > 0]


def export_rl(table: pa.Table) -> list[dict]:
    """RL examples: every learner turn of untruncated games with a non-zero advantage:
    ``{"prompt", "response", "advantage", "reward", "role"}``."""
    rows = table.to_pylist()
    return [{"prompt": r["observation"], "response": r["response"],
             "advantage": r["advantage"], "reward": r["reward"], "role": r["role"],
             "game_id": r["game_id"], "id": r["id"]}
            for r in rows if r["actor"] == "learner" and not r["truncated"]
            and abs(r["advantage"]) > 1e-12]


def summarise(episodes: Sequence[Episode]) -> dict:
    """Win rate (draws count half), mean payoffs per role, invalid-move rate, response length."""
    n = len(episodes)
    turns = [t for e in episodes for t in e.turns if t.actor == "learner"]
    return {
        "episodes": n,
        "learner_win_rate": float(np.mean([e.learner_score for e in episodes])) if n else 0.0,
        "learner_mean_return": float(np.mean([e.learner_return for e in episodes])) if n else 0,
        "mean_return_by_role": [float(np.mean([e.returns[r] for e in episodes])) if n else 0.0
                                for r in (0, 1)],
        "invalid_move_rate": float(np.mean([not t.valid for t in turns])) if turns else 0.0,
        "mean_response_chars": float(np.mean([len(t.response) for t in turns])) if turns else 0,
        "truncated": int(sum(e.truncated for e in episodes)),
    }


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
