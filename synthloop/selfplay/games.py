"""Two-player games with text observations, for self-play data.

Each game is a small immutable-state machine: ``new_state(rng)`` deals (seeded), then players
alternate ``step(state, action)`` until ``is_terminal``; ``returns(state)`` gives both players'
payoffs. Observations are text a language model can read; actions are short words written in
square brackets (``[bet]``, ``[4]``), as in TextArena and SPIRAL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from synthloop.errors import ConfigError

#: Payoff of a player whose move cannot be parsed or is illegal (SPIRAL: mover −1.5).
INVALID_PENALTY = -1.5

_BRACKET = re.compile(r"\[([^\[\]]{1,40})\]")


def parse_action(text: str, legal: list[str]) -> str | None:
    """The last bracketed legal action in ``text`` (case-insensitive), or ``None``."""
    found = [m.strip().lower() for m in _BRACKET.findall(text)]
    for cand in reversed(found):
        if cand in legal:
            return cand
    return None


class Game(Protocol):
    """What the self-play runner needs from a game."""

    name: str

    def new_state(self, rng: np.random.Generator): ...
    def current_player(self, state) -> int: ...
    def legal_actions(self, state) -> list[str]: ...
    def observation(self, state, player: int) -> str: ...
    def step(self, state, action: str): ...
    def is_terminal(self, state) -> bool: ...
    def returns(self, state) -> tuple[float, float]: ...
    def winner(self, state) -> int | None: ...


# --- Kuhn poker -----------------------------------------------------------------------------

CARDS = ("J", "Q", "K")


@dataclass(frozen=True)
class KuhnState:
    cards: tuple[int, int]
    history: str = ""  # 'c' check, 'b' bet, 'k' call, 'f' fold


class KuhnPoker:
    """Kuhn poker: three cards (J < Q < K), ante 1 each, one betting round of size 1.

    Player 0 acts first. Equilibrium value for player 0 is −1/18.
    """

    name = "kuhn-poker"
    _WORD = {"c": "check", "b": "bet", "k": "call", "f": "fold"}
    _CODE = {v: k for k, v in _WORD.items()}

    def new_state(self, rng: np.random.Generator) -> KuhnState:
        deal = rng.permutation(3)[:2]
        return KuhnState((int(deal[0]), int(deal[1])))

    def current_player(self, state: KuhnState) -> int:
        return len(state.history) % 2

    def legal_actions(self, state: KuhnState) -> list[str]:
        return ["call", "fold"] if state.history.endswith("b") else ["check", "bet"]

    def observation(self, state: KuhnState, player: int) -> str:
        moves = ", ".join(f"player {i % 2} {self._WORD[c]}s" for i, c in
                          enumerate(state.history)) or "no moves yet"
        return (f"Kuhn poker. You are player {player}. Your card is "
                f"{CARDS[state.cards[player]]} (J < Q < K). Each player put 1 chip in the pot. "
                f"So far: {moves}. Legal actions: "
                + ", ".join(f"[{a}]" for a in self.legal_actions(state)) + ".")

    def step(self, state: KuhnState, action: str) -> KuhnState:
        if action not in self.legal_actions(state):
            raise ValueError(f"illegal action {action!r}")
        return replace(state, history=state.history + self._CODE[action])

    def is_terminal(self, state: KuhnState) -> bool:
        return state.history in ("cc", "bk", "bf", "cbk", "cbf")

    def returns(self, state: KuhnState) -> tuple[float, float]:
        h = state.history
        if h == "bf":
            return (1.0, -1.0)
        if h == "cbf":
            return (-1.0, 1.0)
        stake = 1.0 if h == "cc" else 2.0
        win0 = state.cards[0] > state.cards[1]
        return (stake, -stake) if win0 else (-stake, stake)

    def winner(self, state: KuhnState) -> int | None:
        r = self.returns(state)
        return 0 if r[0] > r[1] else 1 if r[1] > r[0] else None


# --- Tic-tac-toe ----------------------------------------------------------------------------

_LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8),
          (2, 4, 6))


@dataclass(frozen=True)
class TTTState:
    board: tuple[int, ...] = (-1,) * 9  # -1 empty, else player index
    to_move: int = 0


class TicTacToe:
    """Tic-tac-toe; player 0 plays X and moves first. Win +1, loss −1, draw 0."""

    name = "tictactoe"

    def new_state(self, rng: np.random.Generator) -> TTTState:
        return TTTState()

    def current_player(self, state: TTTState) -> int:
        return state.to_move

    def legal_actions(self, state: TTTState) -> list[str]:
        return [str(i) for i, v in enumerate(state.board) if v == -1]

    def observation(self, state: TTTState, player: int) -> str:
        sym = {-1: ".", 0: "X", 1: "O"}
        rows = ["".join(sym[state.board[r * 3 + c]] if state.board[r * 3 + c] != -1
                        else str(r * 3 + c) for c in range(3)) for r in range(3)]
        return (f"Tic-tac-toe. You play {'XO'[player]}. Board (free cells show their number): "
                f"{' / '.join(rows)}. Legal actions: "
                + ", ".join(f"[{a}]" for a in self.legal_actions(state)) + ".")

    def step(self, state: TTTState, action: str) -> TTTState:
        if action not in self.legal_actions(state):
            raise ValueError(f"illegal action {action!r}")
        board = list(state.board)
        board[int(action)] = state.to_move
        return TTTState(tuple(board), 1 - state.to_move)

    def _line_winner(self, state: TTTState) -> int | None:
        for a, b, c in _LINES:
            v = state.board[a]
            if v != -1 and v == state.board[b] == state.board[c]:
                return v
        return None

    def is_terminal(self, state: TTTState) -> bool:
        return self._line_winner(state) is not None or -1 not in state.board

    def returns(self, state: TTTState) -> tuple[float, float]:
        w = self._line_winner(state)
        return (0.0, 0.0) if w is None else ((1.0, -1.0) if w == 0 else (-1.0, 1.0))

    def winner(self, state: TTTState) -> int | None:
        return self._line_winner(state)


# --- Negotiation ----------------------------------------------------------------------------

@dataclass(frozen=True)
class NegState:
    pool: int
    rounds_left: int
    offer: int | None = None  # coins the last proposer keeps from the pool
    to_move: int = 0
    outcome: str | None = None  # "deal" or "no deal" once over


class Negotiation:
    """Split a pool of coins. A proposal burns one coin, then names how many coins of what is
    left the proposer keeps (``[keep N]``); the other player ``[accept]``s or proposes in turn.
    After ``max_rounds`` proposals the last one must be accepted or ``[reject]``ed (no deal:
    both get 0). Payoff is zero-sum: (mine − theirs) / initial pool, in [−1, 1].
    """

    name = "negotiation"

    def __init__(self, pool: int = 10, max_rounds: int = 4):
        self.pool = pool
        self.max_rounds = max_rounds

    def new_state(self, rng: np.random.Generator) -> NegState:
        return NegState(pool=self.pool, rounds_left=self.max_rounds)

    def current_player(self, state: NegState) -> int:
        return state.to_move

    def legal_actions(self, state: NegState) -> list[str]:
        keep = [f"keep {n}" for n in range(state.pool)] if state.rounds_left > 0 else []
        if state.offer is None:
            return keep
        return ["accept"] + (keep or ["reject"])

    def observation(self, state: NegState, player: int) -> str:
        last = (f"Player {1 - player} proposed to keep {state.offer} of the {state.pool} coins, "
                f"leaving you {state.pool - state.offer}." if state.offer is not None
                else "No proposal yet.")
        return (f"Negotiation. You are player {player}. {state.pool} coins are on the table; "
                f"a new proposal burns one coin ({state.rounds_left} proposals left). {last} "
                f"Legal actions: [accept], [reject] or [keep N] as listed: "
                + ", ".join(f"[{a}]" for a in self.legal_actions(state)[:3]) + " ...")

    def step(self, state: NegState, action: str) -> NegState:
        if action not in self.legal_actions(state):
            raise ValueError(f"illegal action {action!r}")
        if action in ("accept", "reject"):
            return replace(state, outcome="deal" if action == "accept" else "no deal")
        n = int(action.split()[1])
        return NegState(pool=state.pool - 1, rounds_left=state.rounds_left - 1, offer=n,
                        to_move=1 - state.to_move)

    def is_terminal(self, state: NegState) -> bool:
        return state.outcome is not None

    def returns(self, state: NegState) -> tuple[float, float]:
        if state.outcome != "deal" or state.offer is None:
            return (0.0, 0.0)
        proposer = 1 - state.to_move  # the acceptor is the one to move
        got = [0, 0]
        got[proposer], got[1 - proposer] = state.offer, state.pool - state.offer
        d = (got[0] - got[1]) / self.pool
        return (d, -d)

    def winner(self, state: NegState) -> int | None:
        r = self.returns(state)
        return 0 if r[0] > r[1] else 1 if r[1] > r[0] else None


GAMES = {"kuhn-poker": KuhnPoker, "tictactoe": TicTacToe, "negotiation": Negotiation}


def make_game(name: str, **params) -> Game:
    if name not in GAMES:
        raise ConfigError(f"unknown game '{name}' (choose from {', '.join(GAMES)})")
    return GAMES[name](**params)
