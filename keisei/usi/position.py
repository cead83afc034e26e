"""The engine's current position, changed only by a `position` command that is valid throughout.

GUIs resend the whole game with every move (`position startpos moves m1 ... mN`). When the new
command shares its start and a prefix of moves with the current position, only the difference is
undone and replayed, so a long game costs a few moves per command, not a full replay. Any bad
part (unknown form, invalid SFEN, an illegal move anywhere in the list) raises `UsiInputError`
and leaves the position exactly as it was.

Declaring a win (entering king, 27-point rule) is a choice of the side to move, so the tracked
game does not end where a declaration was possible: play goes on if that side moved instead.
Only `go` asks whether the side to move can declare now (`decided_answer`).
"""

from __future__ import annotations

from typing import Literal

import cshogi

from keisei.shogi import IllegalMoveError, InvalidSfenError, ShogiGame
from keisei.shogi.sfen import split_usi_position
from keisei.usi.protocol import UsiInputError


def parse_position(words: list[str]) -> tuple[str, list[str]]:
    """Split the words after `position` into (normalized start SFEN, USI moves)."""
    try:
        return split_usi_position(words)
    except InvalidSfenError as exc:
        raise UsiInputError(f"position: {exc}") from None
    except ValueError:
        raise UsiInputError(
            "position: expected 'position startpos|sfen <sfen> [moves ...]', got "
            f"{' '.join(['position', *words])!r}"
        ) from None


class PositionTracker:
    """Holds the game the GUI last described; `set` applies a `position` command atomically."""

    def __init__(self) -> None:
        self._start = cshogi.STARTING_SFEN
        self._game = self._new_game(self._start)

    @staticmethod
    def _new_game(start_sfen: str) -> ShogiGame:
        # No ply limit and no automatic declaration: the GUI decides when the game ends.
        return ShogiGame(start_sfen, max_plies=None, declaration=False, name="usi")

    @property
    def game(self) -> ShogiGame:
        """The current game (the engine searches a copy of it)."""
        return self._game

    def set(self, words: list[str]) -> None:
        """Apply `position <words>`; raise `UsiInputError` and change nothing on any error."""
        start, moves = parse_position(words)
        if start != self._start:
            game = self._new_game(start)
            self._push_all(game, moves, 0)
            self._start, self._game = start, game
            return
        self._update(moves)

    def _update(self, moves: list[str]) -> None:
        game = self._game
        current = game.usi_moves
        shared = 0
        for old, new in zip(current, moves, strict=False):
            if old != new:
                break
            shared += 1
        undone = [game.pop() for _ in range(len(current) - shared)]
        try:
            self._push_all(game, moves, shared)
        except UsiInputError:
            for move in reversed(undone):
                game.push_move(move)
            raise

    @staticmethod
    def _push_all(game: ShogiGame, moves: list[str], first: int) -> None:
        """Push `moves[first:]`; on an illegal one, take back those pushed and raise."""
        pushed = 0
        try:
            for index in range(first, len(moves)):
                game.push_usi(moves[index])
                pushed += 1
        except IllegalMoveError as exc:
            for _ in range(pushed):
                game.pop()
            number = first + pushed + 1
            reason = exc.detail or "not legal"
            raise UsiInputError(
                f"position: move {number} {moves[first + pushed]!r} is illegal ({reason}); "
                "position unchanged"
            ) from None


def can_declare(game: ShogiGame) -> bool:
    """Whether the side to move may declare a win now (entering king, 27-point rule)."""
    return bool(game.board_copy().is_nyugyoku(cshogi.LAW_27))


def decided_answer(game: ShogiGame) -> Literal["win", "resign"] | None:
    """`win` when the side to move can declare now, `resign` when it is mated or has no legal
    move; None when there is a move to look for. A declaration passed up earlier counts for
    nothing."""
    if can_declare(game):
        return "win"
    result = game.result
    if result is not None and result.reason in ("checkmate", "no_legal_moves"):
        return "resign"
    return None


def searchable(game: ShogiGame, *, declaration: bool | None = None) -> ShogiGame:
    """A copy of `game` to search; `declaration` switches the declaration rule on or off for the
    positions the search reaches (default: the game's own rule). If our rules ended the game where
    the GUI plays on (repetition, perpetual check), the copy starts afresh from the current
    position so there are moves."""
    copy = game.copy(declaration=declaration)
    if copy.result is None:
        return copy
    fresh = ShogiGame(game.sfen(), max_plies=None, name=game.name)
    if fresh.result is not None:
        raise ValueError(f"no move to search: the game is over ({fresh.result.reason})")
    return fresh
