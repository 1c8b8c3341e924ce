"""A REINFORCE recipe with role-conditioned advantages (SPIRAL-style, single process).

The learner is an :class:`~synthloop.selfplay.policies.LMPolicy` in ``choose`` mode: it samples
among the legal actions by their log-probability under the language model, so every move is
valid and ``log π(a | s)`` has a gradient. Each update plays a batch of games (seats
alternating), gives every learner move the advantage ``R_role − b_role`` (per-role EMA baseline)
and takes one optimiser step on ``−mean(A · log π(a | s))``. Win rate and mean return against a
fixed random opponent are measured on the same seeded games at every evaluation.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from synthloop.configs import Config
from synthloop.models.lm import LanguageModel, TinyLM, resolve_device
from synthloop.models.registry import is_from_scratch, load_lm
from synthloop.models.tokenizer import BPETokenizer
from synthloop.progress import NullProgress, Progress
from synthloop.selfplay.curriculum import collapse_warnings, elo_ratings
from synthloop.selfplay.games import Game, make_game
from synthloop.selfplay.policies import PROMPT, LMPolicy, RandomPolicy
from synthloop.selfplay.runner import RoleBaseline, run_episodes, summarise


class RecipeConfig(Config):
    """Attributes:
        game: ``kuhn-poker``, ``tictactoe`` or ``negotiation``.
        model: a from-scratch size (``tiny``, ``small``, ...), ``smollm2-135m`` or a folder.
        updates: optimiser steps; ``games_per_update`` games each.
        opponent: ``random`` (fixed) or ``self`` (a pool of the learner's frozen snapshots,
            one taken every ``snapshot_every`` updates, mixed half-and-half with random).
        lr: Adam learning rate; ``None`` picks 3e-4 for ``tiny`` and 2e-5 for anything larger
            (at 1e-4 a 3.4M or 25.7M learner turns deterministic within ten updates and stops
            learning; measured, see docs/selfplay.md).
        entropy_coef: weight of the policy-entropy bonus (keeps the policy from turning
            deterministic before it has found good moves).
        eval_every, eval_games: how often and on how many seeded games to measure the win
            rate against the random opponent.
    """

    game: str = "kuhn-poker"
    model: str = "tiny"
    device: str = "cpu"
    updates: int = Field(60, ge=1)
    games_per_update: int = Field(32, ge=1)
    lr: float | None = Field(None, gt=0)
    opponent: Literal["random", "self"] = "random"
    snapshot_every: int = Field(10, ge=1)
    eval_every: int = Field(10, ge=1)
    eval_games: int = Field(400, ge=1)
    baseline_decay: float = Field(0.9, ge=0, lt=1)
    entropy_coef: float = Field(0.01, ge=0)
    temperature: float = Field(1.0, gt=0)
    vocab_size: int = Field(512, ge=256)
    elo_games: int = Field(40, ge=0)
    seed: int = 0


def _tokenizer_corpus(game: Game, n: int = 300) -> list[str]:
    rand = RandomPolicy()
    texts = []
    for ep in run_episodes(game, rand, rand, n, seed=12345):
        for t in ep.turns:
            texts.append(PROMPT.format(observation=t.observation) + f" [{t.action}]")
    return texts


def make_learner(cfg: RecipeConfig, game: Game) -> LMPolicy:
    """The learner: a from-scratch LM (tokenizer trained on the game's own text) or a
    pretrained one."""
    if is_from_scratch(cfg.model):
        tok = BPETokenizer.train(_tokenizer_corpus(game), vocab_size=cfg.vocab_size)
        lm: LanguageModel = TinyLM.create(tok, size=cfg.model, max_len=512, seed=cfg.seed,
                                          device=resolve_device(cfg.device))
    else:
        lm = load_lm(cfg.model, device=cfg.device)
    return LMPolicy(lm, mode="choose", temperature=cfg.temperature, version="learner@0")


def evaluate(game: Game, learner: LMPolicy, games: int, seed: int) -> dict:
    eps = run_episodes(game, learner, RandomPolicy(), games, seed=seed)
    return summarise(eps)


def _log_eval(progress: Progress, row: dict) -> None:
    progress.log(f"update {row['update']:>4}: win rate vs random {row['win_rate']:.3f}, "
                 f"mean return {row['mean_return']:+.3f}")


def train_selfplay(cfg: RecipeConfig, progress: Progress | None = None) -> dict:
    """Run the recipe; returns ``{"config", "curve", "final", "warnings", "seconds"}``.

    ``progress`` gets an ``updates`` stage advanced once per update, and a log line per
    evaluation (``update N: win rate vs random …``).

    ``curve`` rows: ``update``, ``win_rate`` and ``mean_return`` against random (seeded eval
    games), ``train_loss``, ``invalid_move_rate``, ``mean_response_chars``.
    """
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    game = make_game(cfg.game)
    learner = make_learner(cfg, game)
    params = [p for p in learner.lm._module().parameters() if p.requires_grad]
    lr = cfg.lr if cfg.lr is not None else (3e-4 if cfg.model == "tiny" else 2e-5)
    opt = torch.optim.Adam(params, lr=lr)
    baseline = RoleBaseline(cfg.baseline_decay)
    pool: list[LMPolicy] = []
    rand = RandomPolicy()
    rng = np.random.default_rng(cfg.seed)
    eval_seed = cfg.seed + 10_000
    curve = [{"update": 0, **_eval_row(evaluate(game, learner, cfg.eval_games, eval_seed))}]
    progress = progress or NullProgress()
    _log_eval(progress, curve[-1])
    progress.stage("updates", cfg.updates)
    loss_val = 0.0
    for update in range(1, cfg.updates + 1):
        def opponent(i: int):
            if cfg.opponent == "self" and pool and rng.random() < 0.5:
                return pool[int(rng.integers(len(pool)))]
            return rand

        episodes = run_episodes(game, learner, opponent, cfg.games_per_update,
                                seed=cfg.seed * 100_003 + update)
        learner.lm._module().train()
        logps, advs, ents = [], [], []
        for ep in episodes:
            adv = baseline.advantage(ep.learner_role, ep.learner_return)
            for t in ep.turns:
                if t.actor != "learner" or t.action is None:
                    continue
                prompt = PROMPT.format(observation=t.observation)
                lp = learner.action_logprobs(prompt, list(t.legal))
                logps.append(lp[list(t.legal).index(t.action)])
                ents.append(-(lp.exp() * lp).sum())
                advs.append(adv)
        learner.lm._module().eval()
        if logps:
            a = torch.tensor(advs, device=learner.lm.device)
            loss = -(a * torch.stack(logps)).mean() - cfg.entropy_coef * torch.stack(ents).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            loss_val = float(loss.item())
        learner.version = f"learner@{update}"
        if update % cfg.snapshot_every == 0:
            pool.append(learner.snapshot(f"learner@{update}"))
        row = None
        if update % cfg.eval_every == 0 or update == cfg.updates:
            row = {"update": update, "train_loss": loss_val,
                   **_eval_row(evaluate(game, learner, cfg.eval_games, eval_seed))}
            curve.append(row)
        if row is not None:
            _log_eval(progress, row)
        progress.advance(1)
    elo = elo_ratings(game, [rand] + pool[-4:], games_per_pair=cfg.elo_games,
                      seed=cfg.seed) if pool and cfg.elo_games else {}
    return {"config": cfg.to_dict(), "curve": curve, "final": curve[-1], "elo": elo,
            "warnings": collapse_warnings(curve), "seconds": time.perf_counter() - t0,
            "parameters": learner.lm.num_params()}


def _eval_row(s: dict) -> dict:
    return {"win_rate": s["learner_win_rate"], "mean_return": s["learner_mean_return"],
            "invalid_move_rate": s["invalid_move_rate"],
            "mean_response_chars": s["mean_response_chars"]}
