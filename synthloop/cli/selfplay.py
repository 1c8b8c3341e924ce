"""``synthloop selfplay`` and ``synthloop selfplay-train``: the evolve rung.

Thin: parse, call a library function, print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthloop.cli.app import app, console, user_errors


@app.command()
@user_errors
def selfplay(
    game: Annotated[str, typer.Option(help="kuhn-poker, tictactoe or negotiation.")],
    episodes: Annotated[int, typer.Option(help="Games to play.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    policy: Annotated[str, typer.Option(help="llm, random, equilibrium (Kuhn) or heuristic "
                                             "(tic-tac-toe).")] = "random",
    opponent: Annotated[str, typer.Option(help="Same choices, or self.")] = "random",
    model: Annotated[str, typer.Option(help="Model of an llm policy.")] = "smollm2-135m",
    llm_mode: Annotated[str, typer.Option(help="generate (free text, parsed) or choose "
                                               "(scores the legal actions).")] = "generate",
    temperature: Annotated[float, typer.Option(help="LLM sampling temperature.")] = 0.7,
    curriculum: Annotated[bool, typer.Option(help="Pick opponents to keep the win rate in "
                                                  "0.3-0.7.")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed of the deals and the policies.")] = 0,
) -> None:
    """Play self-play games and write per-turn records, SFT/RL exports and a summary."""
    from synthloop.selfplay.session import SessionConfig, run_session

    cfg = SessionConfig(game=game, episodes=episodes, out=str(out), policy=policy,
                        opponent=opponent, model=model, llm_mode=llm_mode,
                        temperature=temperature, device=device, seed=seed,
                        curriculum=curriculum)
    from synthloop.progress import RichProgress

    with RichProgress() as progress:
        summary = run_session(cfg, progress=progress)
    for key in ("policy", "opponent", "episodes", "learner_win_rate", "learner_mean_return",
                "mean_return_by_role", "invalid_move_rate", "zero_sum", "records"):
        console.print(f"{key:>22}: {summary[key]}")
    for w in summary["warnings"]:
        console.print(f"[yellow]warning[/]: {w}")
    console.print(f"records: {out / 'turns.parquet'}  exports: {out / 'sft.jsonl'}, "
                  f"{out / 'rl.jsonl'}")


@app.command("selfplay-train")
@user_errors
def selfplay_train(
    out: Annotated[Path, typer.Option(help="Output folder (curve.json).")],
    game: Annotated[str, typer.Option(help="kuhn-poker, tictactoe or negotiation.")
                    ] = "kuhn-poker",
    model: Annotated[str, typer.Option(help="Learner: from-scratch size or a model.")
                     ] = "tiny",
    updates: Annotated[int, typer.Option(help="Optimiser steps.")] = 60,
    games_per_update: Annotated[int, typer.Option(help="Games per step.")] = 32,
    opponent: Annotated[str, typer.Option(help="random or self (snapshot pool).")
                        ] = "random",
    lr: Annotated[float | None, typer.Option(
        help="Adam learning rate [tiny: 3e-4; larger models: 2e-5].")] = None,
    entropy_coef: Annotated[float, typer.Option(help="Weight of the entropy bonus.")] = 0.01,
    eval_games: Annotated[int, typer.Option(help="Seeded games per evaluation.")] = 400,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """REINFORCE with role-conditioned advantages; prints the win rate against random."""
    import json

    from synthloop.progress import StageLines
    from synthloop.records.io import write_text_atomic
    from synthloop.selfplay.train import RecipeConfig, train_selfplay

    if opponent not in ("random", "self"):
        raise typer.BadParameter("opponent must be random or self")
    cfg = RecipeConfig(game=game, model=model, updates=updates,
                       games_per_update=games_per_update, opponent=opponent, lr=lr,
                       entropy_coef=entropy_coef,
                       eval_games=eval_games, device=device, seed=seed)

    res = train_selfplay(cfg, progress=StageLines(console))
    write_text_atomic(json.dumps(res, indent=1), out / "curve.json")
    console.print(f"curve: {out / 'curve.json'} ({res['seconds']:.0f} s, "
                  f"{res['parameters']:,} parameters)")
