"""Curriculum and ratings: keep the learner's win rate in a band; Elo across snapshots;
collapse warnings on invalid moves and response length."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from synthloop.selfplay.games import Game
from synthloop.selfplay.policies import Policy


@dataclass
class Level:
    """One rung of the curriculum: an opponent and the game it is played in."""

    name: str
    opponent: Policy
    game: Game


@dataclass
class Curriculum:
    """Moves between levels (easiest first) to keep the rolling win rate in ``band``.

    After every ``window`` games at a level, a win rate above the band moves one level up
    (harder), below it one level down; the window then starts afresh.
    """

    levels: Sequence[Level]
    band: tuple[float, float] = (0.3, 0.7)
    window: int = 40
    level: int = 0
    _scores: deque = field(default_factory=deque)
    history: list[dict] = field(default_factory=list)

    def current(self) -> Level:
        return self.levels[self.level]

    def record(self, score: float) -> None:
        """Add one game's learner score (1 win, 0.5 draw, 0 loss)."""
        self._scores.append(score)
        if len(self._scores) < self.window:
            return
        rate = float(np.mean(self._scores))
        lo, hi = self.band
        moved = 0
        if rate > hi and self.level < len(self.levels) - 1:
            moved = 1
        elif rate < lo and self.level > 0:
            moved = -1
        self.history.append({"level": self.levels[self.level].name, "win_rate": rate,
                             "moved": moved})
        self.level += moved
        self._scores.clear()


def elo_update(ra: float, rb: float, score_a: float, k: float = 32.0) -> tuple[float, float]:
    """Elo after one game; ``score_a`` is 1 (a wins), 0.5 (draw) or 0."""
    expect = 1.0 / (1.0 + 10 ** ((rb - ra) / 400))
    return ra + k * (score_a - expect), rb - k * (score_a - expect)


def elo_ratings(game: Game, policies: Sequence[Policy], *, games_per_pair: int = 40,
                seed: int = 0, k: float = 16.0) -> dict[str, float]:
    """Round-robin Elo (start 1000) over ``policies``, seats alternating, seeded."""
    from synthloop.selfplay.runner import play_episode

    ratings = {p.version: 1000.0 for p in policies}
    gid = 0
    for i, a in enumerate(policies):
        for b in policies[i + 1:]:
            for g in range(games_per_pair):
                ep = play_episode(game, a, b, game_id=gid, seed=seed * 7919 + gid,
                                  learner_role=g % 2)
                gid += 1
                ratings[a.version], ratings[b.version] = elo_update(
                    ratings[a.version], ratings[b.version], ep.learner_score, k)
    return ratings


def collapse_warnings(history: Sequence[dict], *, invalid_limit: float = 0.05,
                      length_drop: float = 0.5) -> list[str]:
    """Warnings from a training history of ``{"invalid_move_rate", "mean_response_chars"}``:
    invalid moves above ``invalid_limit``, or responses shrinking below ``length_drop`` of
    their first value (a sign the policy stopped reasoning)."""
    out = []
    if not history:
        return out
    last = history[-1]
    if last.get("invalid_move_rate", 0.0) > invalid_limit:
        out.append(f"invalid-move rate {last['invalid_move_rate']:.1%} is above "
                   f"{invalid_limit:.0%}")
    first_len = history[0].get("mean_response_chars", 0.0)
    if first_len and last.get("mean_response_chars", 0.0) < length_drop * first_len:
        out.append(f"responses shrank from {first_len:.0f} to "
                   f"{last['mean_response_chars']:.0f} characters")
    return out
