"""Matches: N games between two players on the game layer, colours alternating.

The evaluated agent is black in the even-numbered games and white in the others. Optional random
opening plies (drawn from the match's seed) vary the games so that deterministic players do not
replay one game. Rule endings come from the game layer; a player that resigns, plays an illegal
move, or fails (a hung or crashed engine) loses that game, and the match goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keisei.evaluation.players import RESIGN, Player, PlayerFailure
from keisei.evaluation.result import GameResult, Outcome
from keisei.log import get_logger
from keisei.shogi import COLOR_NAMES, IllegalMoveError, ShogiGame
from keisei.shogi.records import GameRecord

_log = get_logger("evaluation.match")
_OPENING_ATTEMPTS = 50

_KIF_ENDINGS = {
    "resign": "投了",
    "illegal_move": "反則負け",
    "engine_timeout": "切れ負け",
    "engine_crash": "中断",
}
_CSA_ENDINGS = {
    "resign": "%TORYO",
    "illegal_move": "%ILLEGAL_MOVE",
    "engine_timeout": "%TIME_UP",
    "engine_crash": "%CHUDAN",
}


@dataclass(frozen=True)
class MatchSettings:
    games: int
    max_plies: int = 512
    declaration: bool = True
    random_opening_plies: int = 0
    seed: int = 0
    record_dir: Path | None = None
    """Where each game's KIF and CSA files go (None: not saved)."""


@dataclass(frozen=True)
class PlayedGame:
    """One finished game, from the board's point of view."""

    record: GameRecord
    winner: int | None
    """0 black, 1 white, None draw."""
    reason: str
    plies: int
    duration_s: float
    record_path: Path | None


def _opening(settings: MatchSettings, rng: np.random.Generator, name: str) -> ShogiGame:
    for _ in range(_OPENING_ATTEMPTS):
        game = ShogiGame(max_plies=settings.max_plies, declaration=settings.declaration, name=name)
        for _ in range(settings.random_opening_plies):
            labels = game.legal_labels()
            game.push_label(int(labels[rng.integers(len(labels))]))
            if game.is_over:
                break
        if not game.is_over:
            game.opening_plies = game.ply
            return game
    raise RuntimeError(f"{_OPENING_ATTEMPTS} random openings all ended the game")


def _save(record: GameRecord, reason: str, winner: int | None, directory: Path, stem: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    kif, csa = record.to_kif(), record.to_csa()
    if record.result is None:  # adjudicated: not a rule ending the game layer knows
        side = "先手" if winner == 0 else "後手"
        kif += (
            f"まで{record.plies}手で{side}の{_KIF_ENDINGS.get(reason, reason)}\n*keisei: {reason}\n"
        )
        csa += f"{_CSA_ENDINGS.get(reason, '%CHUDAN')}\n'keisei: {reason}\n"
    path = directory / f"{stem}.kifu"
    path.write_text(kif, encoding="utf-8")
    (directory / f"{stem}.csa").write_text(csa, encoding="utf-8")
    return path


def play_game(
    black: Player,
    white: Player,
    settings: MatchSettings,
    rng: np.random.Generator,
    name: str = "game",
) -> PlayedGame:
    """Play one game to its end; never raises for a player's misbehaviour."""
    started = time.monotonic()
    game = _opening(settings, rng, name)
    players = (black, white)
    loser: int | None = None
    reason = ""
    for player in players:
        try:
            player.new_game()
        except PlayerFailure as exc:
            loser, reason = players.index(player), exc.reason
            _log.warning("%s: %s", name, exc)
            break
    while loser is None and not game.is_over:
        side = game.turn
        player = players[side]
        try:
            move = player.choose(game)
        except PlayerFailure as exc:
            loser, reason = side, exc.reason
            _log.warning("%s: %s loses: %s", name, player.name, exc)
            break
        if move == RESIGN:
            loser, reason = side, "resign"
            break
        try:
            game.push_usi(move)
        except IllegalMoveError as exc:
            loser, reason = side, "illegal_move"
            _log.warning("%s: %s played an illegal move and loses: %s", name, player.name, exc)
    if loser is not None:
        winner: int | None = 1 - loser
    else:
        assert game.result is not None
        reason = game.result.reason
        winner = None if game.result.winner is None else COLOR_NAMES.index(game.result.winner)
    record = game.record(black.name, white.name)
    path = None
    if settings.record_dir is not None:
        path = _save(record, reason, winner, settings.record_dir, name)
    return PlayedGame(record, winner, reason, game.ply, time.monotonic() - started, path)


def play_match(
    agent: Player,
    opponent: Player,
    settings: MatchSettings,
    on_game: Callable[[GameResult], None] | None = None,
) -> list[GameResult]:
    """`settings.games` games, the agent black in even-numbered games; results from its side.

    `on_game` is called after each game (progress display, recording).
    """
    rng = np.random.default_rng(settings.seed)
    results = []
    for index in range(settings.games):
        agent_color = index % 2
        black, white = (agent, opponent) if agent_color == 0 else (opponent, agent)
        stem = f"{_safe(agent.name)}_vs_{_safe(opponent.name)}_{index:03d}"
        played = play_game(black, white, settings, rng, stem)
        outcome: Outcome
        if played.winner is None:
            outcome = "draw"
        else:
            outcome = "win" if played.winner == agent_color else "loss"
        result = GameResult(
            opponent=opponent.name,
            agent_color=COLOR_NAMES[agent_color],
            outcome=outcome,
            reason=played.reason,
            plies=played.plies,
            duration_s=played.duration_s,
            record_path=None if played.record_path is None else str(played.record_path),
        )
        results.append(result)
        if on_game is not None:
            on_game(result)
    return results


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "-" for ch in name)[:60]
