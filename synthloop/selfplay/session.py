"""A self-play session as the CLI runs it: build policies, play (optionally under a
curriculum), write records, exports and a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from synthloop.configs import Config
from synthloop.errors import ConfigError
from synthloop.progress import NullProgress, Progress
from synthloop.records.io import write_parquet, write_text_atomic
from synthloop.records.schema import Generator
from synthloop.selfplay.curriculum import Curriculum, Level, collapse_warnings, elo_ratings
from synthloop.selfplay.games import Game, KuhnPoker, Negotiation, TicTacToe, make_game
from synthloop.selfplay.policies import (
    KuhnEquilibriumPolicy,
    LMPolicy,
    Policy,
    RandomPolicy,
    TicTacToeHeuristicPolicy,
)
from synthloop.selfplay.runner import (
    episode_records,
    export_rl,
    export_sft,
    play_episode,
    summarise,
    to_jsonl,
)

POLICIES = ("llm", "random", "equilibrium", "heuristic")


class SessionConfig(Config):
    """A self-play session.

    Attributes:
        game: ``kuhn-poker``, ``tictactoe`` or ``negotiation``.
        episodes: games to play (≥ 1).
        out: folder the turns, SFT/RL exports and summary are written to.
        policy, opponent: ``random``, ``equilibrium`` (Kuhn poker), ``heuristic``
            (tic-tac-toe) or ``llm``; the opponent may also be ``self``.
        model, llm_mode, temperature, device: the ``llm`` player's model, how it picks an
            action (``generate`` or ``choose``), its sampling temperature (> 0) and device.
        curriculum: move the learner through opponent levels, keeping its win rate inside
            ``band`` (two shares, low < high, in [0, 1]).
    """

    game: str
    episodes: int = Field(ge=1)
    out: str
    policy: Literal["random", "equilibrium", "heuristic", "llm"] = "random"
    opponent: Literal["random", "equilibrium", "heuristic", "llm", "self"] = "random"
    model: str = "smollm2-135m"
    llm_mode: Literal["generate", "choose"] = "generate"
    temperature: float = Field(0.7, gt=0)
    device: str = "cpu"
    seed: int = 0
    curriculum: bool = False
    band: tuple[float, float] = (0.3, 0.7)

    @model_validator(mode="after")
    def _band(self) -> SessionConfig:
        low, high = self.band
        if not 0 <= low < high <= 1:
            raise ValueError(f"band must be two shares 0 ≤ low < high ≤ 1, got {list(self.band)}")
        return self


def build_policy(kind: str, game: Game, cfg: SessionConfig, cache: dict) -> Policy:
    if kind == "random":
        return RandomPolicy()
    if kind == "equilibrium":
        if not isinstance(game, KuhnPoker):
            raise ConfigError("policy/opponent equilibrium is defined for kuhn-poker only",
                              fields=("policy", "opponent"))
        return KuhnEquilibriumPolicy()
    if kind == "heuristic":
        if not isinstance(game, TicTacToe):
            raise ConfigError("policy/opponent heuristic is defined for tictactoe only",
                              fields=("policy", "opponent"))
        return TicTacToeHeuristicPolicy()
    if kind == "llm":
        if "llm" not in cache:
            from synthloop.models.registry import load_lm

            lm = load_lm(cfg.model, device=cfg.device)
            cache["llm"] = LMPolicy(lm, mode=cfg.llm_mode, temperature=cfg.temperature)
        return cache["llm"]
    raise ConfigError(f"unknown policy '{kind}' (choose from {', '.join(POLICIES)}, or "
                      f"'self' as opponent)")


def _levels(game: Game, learner: Policy) -> list[Level]:
    if isinstance(game, KuhnPoker):
        opps: list[Policy] = [RandomPolicy(), KuhnEquilibriumPolicy(1 / 3), learner]
    elif isinstance(game, TicTacToe):
        opps = [RandomPolicy(), TicTacToeHeuristicPolicy(0.5), TicTacToeHeuristicPolicy(1.0)]
    else:  # negotiation: a small pool first (fewer ways to go wrong), then the full game
        small = Negotiation(pool=4, max_rounds=game.max_rounds)
        return [Level("random-pool4", RandomPolicy(), small), Level("random", RandomPolicy(), game),
                Level("self", learner, game)]
    return [Level(o.version if o is not learner else "self", o, game) for o in opps]


def run_session(cfg: SessionConfig, progress: Progress | None = None) -> dict:
    """Play, then write ``turns.parquet``, ``sft.jsonl``, ``rl.jsonl`` and ``summary.json``
    under ``cfg.out``; returns the summary. ``progress`` gets a ``games`` stage advanced
    once per game."""
    progress = progress or NullProgress()
    game = make_game(cfg.game)
    cache: dict = {}
    learner = build_policy(cfg.policy, game, cfg, cache)
    opponent = learner if cfg.opponent == "self" else build_policy(cfg.opponent, game, cfg,
                                                                    cache)
    curriculum = Curriculum(_levels(game, learner), band=cfg.band) if cfg.curriculum else None
    episodes = []
    progress.stage("games", cfg.episodes)
    for i in range(cfg.episodes):
        level = curriculum.current() if curriculum else None
        ep = play_episode(level.game if level else game, learner,
                          level.opponent if level else opponent, game_id=i,
                          seed=cfg.seed * 1_000_003 + i, learner_role=i % 2)
        episodes.append(ep)
        if curriculum:
            curriculum.record(ep.learner_score)
        progress.advance(1)
    weights = "scripted"
    decoding: dict = {}
    if isinstance(learner, LMPolicy):
        weights = learner.lm.weights_sha256()
        decoding = {"mode": learner.mode, "temperature": learner.temperature,
                    "max_new_tokens": learner.max_new_tokens}
    table = episode_records(episodes, generator=Generator(learner.version, weights, decoding,
                                                          cfg.seed),
                            run_id=f"selfplay-{cfg.game}-seed{cfg.seed}")
    out = Path(cfg.out)
    write_parquet(table, out / "turns.parquet")
    write_text_atomic(to_jsonl(export_sft(table)), out / "sft.jsonl")
    write_text_atomic(to_jsonl(export_rl(table)), out / "rl.jsonl")
    summary = {"game": cfg.game, "policy": learner.version,
               "opponent": "curriculum" if curriculum else opponent.version,
               **summarise(episodes), "records": table.num_rows}
    per_game = {}
    for ep in episodes:
        per_game[ep.game_id] = ep.returns
    summary["zero_sum"] = bool(all(abs(a + b) < 1e-9 for a, b in per_game.values()))
    if curriculum:
        summary["curriculum"] = curriculum.history
        summary["final_level"] = curriculum.current().name
    summary["warnings"] = collapse_warnings([summarise(episodes)])
    if cfg.opponent != "self" and not curriculum and opponent is not learner:
        summary["elo"] = elo_ratings(game, [learner, opponent], games_per_pair=20,
                                     seed=cfg.seed)
    write_text_atomic(json.dumps(summary, indent=1), out / "summary.json")
    return summary


def mean_payoff(game: Game, p0: Policy, p1: Policy, games: int, seed: int = 0) -> float:
    """Player 0's mean payoff with ``p0`` always in seat 0 (for checking game values)."""
    vals = [play_episode(game, p0, p1, game_id=i, seed=seed + i, learner_role=0).returns[0]
            for i in range(games)]
    return float(np.mean(vals))
