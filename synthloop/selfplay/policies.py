"""Policies that play the self-play games: scripted ones and language-model ones."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from synthloop.models.lm import LanguageModel
from synthloop.models.params import GenParams
from synthloop.selfplay.games import Game, KuhnPoker, TicTacToe, parse_action


@dataclass(frozen=True)
class Decision:
    """What a policy wrote: its reasoning (may be empty) and its answer text."""

    reasoning: str
    text: str


class Policy(Protocol):
    name: str
    version: str

    def act(self, game: Game, state, player: int, rng: np.random.Generator) -> Decision: ...


class RandomPolicy:
    """Uniform over the legal actions."""

    name = "random"
    version = "random"

    def act(self, game, state, player, rng):
        legal = game.legal_actions(state)
        return Decision("", f"[{legal[int(rng.integers(len(legal)))]}]")


class KuhnEquilibriumPolicy:
    """A Nash equilibrium of Kuhn poker (Kuhn 1950), parametrised by ``alpha`` ∈ [0, 1/3].

    Player 0 bets a J with probability α, checks a Q and calls a bet after checking with
    probability α + 1/3, bets a K with probability 3α. Player 1 bets a J after a check with
    probability 1/3, calls a bet with a Q with probability 1/3, and always bets/calls a K.
    Player 0's expected payoff is −1/18 for every α.
    """

    name = "equilibrium"

    def __init__(self, alpha: float = 0.0):
        if not 0 <= alpha <= 1 / 3:
            raise ValueError("alpha must be in [0, 1/3]")
        self.alpha = alpha
        self.version = f"kuhn-equilibrium-a{alpha:.3f}"

    def prob_aggressive(self, card: int, history: str) -> float:
        """Probability of bet/call (the aggressive action) in this information set."""
        a = self.alpha
        if history == "":  # player 0 opens
            return (a, 0.0, 3 * a)[card]
        if history == "cb":  # player 0 faces a bet after checking
            return (0.0, a + 1 / 3, 1.0)[card]
        if history == "b":  # player 1 faces a bet
            return (0.0, 1 / 3, 1.0)[card]
        if history == "c":  # player 1 after a check
            return (1 / 3, 0.0, 1.0)[card]
        raise ValueError(f"not a decision point: {history!r}")

    def act(self, game, state, player, rng):
        if not isinstance(game, KuhnPoker):
            raise ValueError("the equilibrium policy plays Kuhn poker only")
        p = self.prob_aggressive(state.cards[player], state.history)
        aggressive = "call" if state.history.endswith("b") else "bet"
        passive = "fold" if state.history.endswith("b") else "check"
        return Decision("", f"[{aggressive if rng.random() < p else passive}]")


PROMPT = ("{observation}\nThink briefly, then give your action in square brackets, for "
          "example [check].\nAction:")


class LMPolicy:
    """A language model as a policy.

    ``mode="choose"`` scores every legal action's text ``" [action]"`` after the prompt and
    samples from the softmax of those log-probabilities (always valid; differentiable, so
    REINFORCE can train it). ``mode="generate"`` lets the model write freely and parses the
    last bracketed legal action from its answer; unparseable answers are invalid moves.
    """

    name = "llm"

    def __init__(self, lm: LanguageModel, *, mode: str = "choose", temperature: float = 1.0,
                 max_new_tokens: int = 48, version: str | None = None):
        if mode not in ("choose", "generate"):
            raise ValueError("mode must be 'choose' or 'generate'")
        self.lm = lm
        self.mode = mode
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.version = version or f"{lm.name}@{lm.weights_sha256()[:12]}"

    def prompt(self, game: Game, state, player: int) -> str:
        return PROMPT.format(observation=game.observation(state, player))

    def action_logprobs(self, prompt: str, actions: list[str]) -> torch.Tensor:
        """log π(action | prompt) over ``actions`` (sums to 1 after exp); keeps the graph."""
        lm = self.lm
        p_ids = [lm.bos_id] + lm.encode([prompt])[0]
        conts = lm.encode([f" [{a}]" for a in actions])
        width = len(p_ids) + max(len(c) for c in conts)
        inp = torch.full((len(actions), width), lm.bos_id, dtype=torch.long)
        mask = torch.zeros(len(actions), width - 1, dtype=torch.bool)
        for i, c in enumerate(conts):
            seq = p_ids + c
            inp[i, :len(seq)] = torch.tensor(seq)
            mask[i, len(p_ids) - 1:len(seq) - 1] = True
        inp, mask = inp.to(lm.device), mask.to(lm.device)
        logits = lm._logits_fn()(inp[:, :-1]).float()
        tok_lp = logits.log_softmax(-1).gather(-1, inp[:, 1:, None])[..., 0]
        seq_lp = (tok_lp * mask).sum(-1) / self.temperature
        return seq_lp.log_softmax(-1)

    def act(self, game, state, player, rng):
        legal = game.legal_actions(state)
        prompt = self.prompt(game, state, player)
        if self.mode == "choose":
            with torch.no_grad():
                probs = self.action_logprobs(prompt, legal).exp().cpu().numpy()
            probs = probs / probs.sum()
            return Decision("", f"[{legal[int(rng.choice(len(legal), p=probs))]}]")
        ids = [self.lm.bos_id] + self.lm.encode([self.lm.format_chat(prompt)])[0]
        out = self.lm.generate([ids], GenParams(max_new_tokens=self.max_new_tokens,
                                                temperature=self.temperature, batch_size=1),
                               seed=int(rng.integers(2**31)))
        text = self.lm.decode(out)[0]
        action = parse_action(text, legal)
        head, _, _ = text.rpartition("[") if action else (text, "", "")
        return Decision(head.strip(), text.strip())

    def snapshot(self, version: str) -> LMPolicy:
        """A frozen copy (for the opponent pool)."""
        lm = copy.deepcopy(self.lm)
        return LMPolicy(lm, mode=self.mode, temperature=self.temperature,
                        max_new_tokens=self.max_new_tokens, version=version)


class TicTacToeHeuristicPolicy:
    """A scripted tic-tac-toe rung: wins when it can, blocks when it must, else random
    (``skill`` < 1 replaces that with a random move with probability 1 − skill)."""

    name = "heuristic"

    def __init__(self, skill: float = 1.0):
        self.skill = skill
        self.version = f"tictactoe-heuristic-{skill:.2f}"

    def act(self, game, state, player, rng):
        if not isinstance(game, TicTacToe):
            raise ValueError("the heuristic policy plays tic-tac-toe only")
        legal = game.legal_actions(state)
        if rng.random() < self.skill:
            for who in (player, 1 - player):  # win first, then block
                for a in legal:
                    board = list(state.board)
                    board[int(a)] = who
                    probe = type(state)(tuple(board), 1 - player)
                    if game.winner(probe) == who:
                        return Decision("", f"[{a}]")
        return Decision("", f"[{legal[int(rng.integers(len(legal)))]}]")
