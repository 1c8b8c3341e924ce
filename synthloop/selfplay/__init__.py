"""Self-play data evolution: games, policies, per-turn records with role-conditioned
advantages, a curriculum, Elo, SFT/RL export and a REINFORCE recipe."""

from synthloop.selfplay.games import KuhnPoker, Negotiation, TicTacToe, make_game, parse_action
from synthloop.selfplay.policies import (
    KuhnEquilibriumPolicy,
    LMPolicy,
    RandomPolicy,
    TicTacToeHeuristicPolicy,
)
from synthloop.selfplay.runner import episode_records, export_rl, export_sft, run_episodes

__all__ = ["KuhnEquilibriumPolicy", "KuhnPoker", "LMPolicy", "Negotiation", "RandomPolicy",
           "TicTacToe", "TicTacToeHeuristicPolicy", "episode_records", "export_rl", "export_sft",
           "make_game", "parse_action", "run_episodes"]
