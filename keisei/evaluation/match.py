"""Matches: N games between two players on the game layer, colours alternating.

The evaluated agent is black in the even-numbered games and white in the others. Optional random
opening plies (drawn from the match's seed) vary the games so that deterministic players do not
replay one game. Rule endings come from the game layer; a player that resigns, plays an illegal
move, or fails (a hung or crashed engine) loses that game, and the match goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keisei.evaluation.players.base import RESIGN, Player, PlayerFailure
from keisei.evaluation.players.network import NeuralPlayer
from keisei.evaluation.players.usi import UsiPlayer
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


class _Table:
    """One game in progress between the two players of a match."""

    def __init__(self, index: int, agent: Player, opponent: Player, game: ShogiGame) -> None:
        self.index = index
        self.agent_color = index % 2
        self.players = (agent, opponent) if self.agent_color == 0 else (opponent, agent)
        self.game = game
        self.loser: int | None = None
        self.reason = ""
        self.started = 0.0

    @property
    def done(self) -> bool:
        return self.loser is not None or self.game.is_over

    @property
    def to_move(self) -> Player:
        return self.players[self.game.turn]

    def lose(self, side: int, reason: str, why: str) -> None:
        self.loser, self.reason = side, reason
        _log.warning("%s: %s loses (%s): %s", self.game.name, self.players[side].name, reason, why)

    def start(self) -> None:
        self.started = time.monotonic()
        for side, player in enumerate(self.players):
            try:
                player.new_game()
            except PlayerFailure as exc:
                self.lose(side, exc.reason, str(exc))
                return

    def play(self, answer: str | PlayerFailure) -> None:
        side = self.game.turn
        if isinstance(answer, PlayerFailure):
            self.lose(side, answer.reason, str(answer))
        elif answer == RESIGN:
            self.loser, self.reason = side, "resign"
        else:
            try:
                self.game.push_usi(answer)
            except IllegalMoveError as exc:
                self.lose(side, "illegal_move", str(exc))

    def result(self, settings: MatchSettings) -> GameResult:
        game = self.game
        if self.loser is not None:
            winner: int | None = 1 - self.loser
            reason = self.reason
        else:
            assert game.result is not None
            reason = game.result.reason
            winner = None if game.result.winner is None else COLOR_NAMES.index(game.result.winner)
        black, white = self.players
        record = game.record(black.name, white.name)
        path = None
        if settings.record_dir is not None:
            path = _save(record, reason, winner, settings.record_dir, game.name)
        outcome: Outcome = "draw"
        if winner is not None:
            outcome = "win" if winner == self.agent_color else "loss"
        return GameResult(
            opponent=self.players[1 - self.agent_color].name,
            agent_color=COLOR_NAMES[self.agent_color],
            outcome=outcome,
            reason=reason,
            plies=game.ply,
            duration_s=time.monotonic() - self.started,
            record_path=None if path is None else str(path),
        )


def batchable(player: Player) -> bool:
    """Whether the player can answer for several running games at once (no external engine)."""
    return not isinstance(player, UsiPlayer)


def choose_many(player: Player, games: Sequence[ShogiGame]) -> list[str | PlayerFailure]:
    """The player's answer for each game: a batched pass for networks, one by one otherwise.

    A `PlayerFailure` is returned in place of that game's move, not raised.
    """
    if isinstance(player, NeuralPlayer):
        return list(player.choose_many(games))
    answers: list[str | PlayerFailure] = []
    for game in games:
        try:
            answers.append(player.choose(game))
        except PlayerFailure as exc:
            answers.append(exc)
    return answers


def _play_together(
    tables: list[_Table], settings: MatchSettings, on_game: Callable[[GameResult], None] | None
) -> list[tuple[int, GameResult]]:
    """Play the tables in lockstep: each player answers for all its games at once."""
    results = []
    for table in tables:
        table.start()
    active = list(tables)
    while active:
        for player in dict.fromkeys(table.to_move for table in active if not table.done):
            waiting = [t for t in active if not t.done and t.to_move is player]
            for table, answer in zip(waiting, choose_many(player, [t.game for t in waiting]),
                                     strict=True):  # fmt: skip
                table.play(answer)
        for table in [t for t in active if t.done]:
            result = table.result(settings)
            results.append((table.index, result))
            if on_game is not None:
                on_game(result)
        active = [t for t in active if not t.done]
    return results


def play_match(
    agent: Player,
    opponent: Player,
    settings: MatchSettings,
    on_game: Callable[[GameResult], None] | None = None,
) -> list[GameResult]:
    """`settings.games` games, the agent black in even-numbered games; results from its side,
    in game order.

    Networks answer for all their running games in one batched forward pass. An external engine
    plays its games one after the other, as USI engines expect.
    """
    rng = np.random.default_rng(settings.seed)
    stem = f"{_safe(agent.name)}_vs_{_safe(opponent.name)}"
    tables = [
        _Table(i, agent, opponent, _opening(settings, rng, f"{stem}_{i:03d}"))
        for i in range(settings.games)
    ]
    if batchable(agent) and batchable(opponent):
        results = _play_together(tables, settings, on_game)
    else:
        results = [r for table in tables for r in _play_together([table], settings, on_game)]
    return [result for _, result in sorted(results, key=lambda pair: pair[0])]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.@" else "-" for ch in name)[:60]
