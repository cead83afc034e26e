"""One game of Shogi under the official rules, on top of a cshogi board.

`ShogiGame` is the only thing that touches the board: every move is checked against the legal
moves of the position before cshogi sees it, and after each move it rules on the game (checkmate
or no legal move, fourfold repetition and perpetual check, entering-king declaration, ply limit).
The self-play environment, the evaluation players and the USI engine all play through it.
"""

from __future__ import annotations

import operator
import re
from typing import Final

import cshogi
import numpy as np

from keisei.shogi.encoding import NUM_LABELS, board_features, board_observation, labels_for_moves
from keisei.shogi.errors import IllegalMoveError
from keisei.shogi.outcome import COLOR_NAMES, Color, EndReason, GameEnd
from keisei.shogi.records import GameRecord
from keisei.shogi.repetition import SENNICHITE_OCCURRENCES, RepetitionTracker
from keisei.shogi.sfen import normalize_sfen, split_usi_position

DEFAULT_MAX_PLIES: Final[int] = 512
_USI_MOVE: Final = re.compile(r"(?:[1-9][a-i][1-9][a-i]\+?|[PLNSGBR]\*[1-9][a-i])")


class ShogiGame:
    """A game from a start position: legal moves as cshogi moves, USI strings or policy labels,
    undo, the verdict once the game is over, features, and records.

    `max_plies` (None: no limit) ends the game as a draw after that many moves; `declaration`
    turns the entering-king declaration (27-point rule) on. `name` appears in error messages.
    """

    __slots__ = (
        "_board",
        "_start_sfen",
        "_moves",
        "_turn",
        "_legal",
        "_labels",
        "_label_index",
        "_repetition",
        "_result",
        "_max_plies",
        "_declaration",
        "name",
        "opening_plies",
    )

    def __init__(
        self,
        sfen: str | None = None,
        *,
        max_plies: int | None = DEFAULT_MAX_PLIES,
        declaration: bool = True,
        name: str = "game",
    ) -> None:
        if max_plies is not None and max_plies < 1:
            raise ValueError(f"max_plies must be positive or None, not {max_plies}")
        start = cshogi.STARTING_SFEN if sfen is None else normalize_sfen(sfen)
        self._board = cshogi.Board(start)
        self._start_sfen = self._board.sfen()
        self._moves: list[int] = []
        self._turn: int = self._board.turn
        self._max_plies = max_plies
        self._declaration = declaration
        self.name = name
        self.opening_plies = 0
        self._repetition = RepetitionTracker(
            self._board.zobrist_hash(), self._board.is_check(), self._turn
        )
        self._legal: list[int] = []
        self._labels: np.ndarray | None = None
        self._label_index: dict[int, int] | None = None
        self._refresh_legal()
        self._result: GameEnd | None = self._rule(1)

    @classmethod
    def from_sfen(
        cls,
        sfen: str,
        *,
        max_plies: int | None = DEFAULT_MAX_PLIES,
        declaration: bool = True,
        name: str = "game",
    ) -> ShogiGame:
        """A game starting from `sfen` (validated; `startpos` and a `sfen ` prefix accepted)."""
        return cls(sfen, max_plies=max_plies, declaration=declaration, name=name)

    @classmethod
    def from_usi_position(
        cls,
        position: str,
        *,
        max_plies: int | None = DEFAULT_MAX_PLIES,
        declaration: bool = True,
        name: str = "game",
    ) -> ShogiGame:
        """Replay a USI `position` argument: `[position] startpos|sfen <sfen> [moves m1 m2 ...]`.

        Each move is validated; an illegal one raises `IllegalMoveError`.
        """
        words = position.split()
        if words and words[0] == "position":
            words = words[1:]
        sfen, moves = split_usi_position(words)
        game = cls(sfen, max_plies=max_plies, declaration=declaration, name=name)
        for move in moves:
            game.push_usi(move)
        return game

    # --- state -----------------------------------------------------------------------------

    @property
    def start_sfen(self) -> str:
        return self._start_sfen

    @property
    def ply(self) -> int:
        """Moves played in this game so far."""
        return len(self._moves)

    @property
    def turn(self) -> int:
        """Side to move as an index: 0 black (sente), 1 white (gote)."""
        return self._turn

    @property
    def side_to_move(self) -> Color:
        return COLOR_NAMES[self._turn]

    @property
    def result(self) -> GameEnd | None:
        """None while the game runs; how it ended once it is over."""
        return self._result

    @property
    def is_over(self) -> bool:
        return self._result is not None

    @property
    def max_plies(self) -> int | None:
        return self._max_plies

    @property
    def moves(self) -> list[int]:
        """The cshogi moves played so far (a copy)."""
        return list(self._moves)

    @property
    def usi_moves(self) -> list[str]:
        return [cshogi.move_to_usi(move) for move in self._moves]

    def sfen(self) -> str:
        """The current position."""
        return self._board.sfen()

    def usi_position(self) -> str:
        """`sfen <start> moves <m1> ...`: the argument of USI's `position` command."""
        return self.record().usi_position()

    def is_check(self) -> bool:
        """Whether the side to move is in check."""
        return bool(self._board.is_check())

    def repetitions(self) -> int:
        """How often the current position has occurred in this game (1 the first time)."""
        return self._repetition.occurrences()

    def board_copy(self) -> cshogi.Board:
        """A cshogi board of the current position, with history, that the caller may modify."""
        return self._board.copy()

    # --- legal moves and the label encoding --------------------------------------------------

    def legal_moves(self) -> list[int]:
        """cshogi moves legal now (none once the game is over)."""
        return [] if self._result is not None else list(self._legal)

    def legal_usi(self) -> list[str]:
        return [cshogi.move_to_usi(move) for move in self.legal_moves()]

    def legal_labels(self) -> np.ndarray:
        """Policy labels of the legal moves, in move-generation order (int64)."""
        if self._result is not None:
            return np.zeros(0, dtype=np.int64)
        return self._label_array().astype(np.int64)

    def legal_mask(self, out: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask over the 2187 labels; written into `out` when given."""
        if out is None:
            out = np.zeros(NUM_LABELS, dtype=bool)
        else:
            if out.shape != (NUM_LABELS,) or out.dtype != np.bool_:
                raise ValueError(f"mask buffer must be bool of shape ({NUM_LABELS},)")
            out.fill(False)
        if self._result is None:
            out[self._label_array()] = True
        return out

    def move_for_label(self, label: int) -> int:
        """The legal cshogi move that `label` denotes here; IllegalMoveError if none."""
        if self._result is None:
            index = self._label_index
            if index is None:
                labels = self._label_array().tolist()
                index = self._label_index = dict(zip(labels, self._legal, strict=True))
            try:
                move = index.get(operator.index(label))
            except TypeError:
                move = None
            if move is not None:
                return move
        raise self._illegal(label, "label")

    def label_for_move(self, move: int) -> int:
        """The policy label of a legal cshogi move; IllegalMoveError if it is not legal."""
        try:
            if self._result is None:
                return int(self._label_array()[self._legal.index(operator.index(move))])
        except (ValueError, TypeError):
            pass
        raise self._illegal(move, "move")

    def move_for_usi(self, usi: str) -> int:
        """The legal cshogi move written `usi`; IllegalMoveError if it is not legal."""
        if isinstance(usi, str) and _USI_MOVE.fullmatch(usi) and self._result is None:
            move = self._board.move_from_usi(usi)
            if move and move in self._legal:
                return move
        raise self._illegal(usi, "USI move")

    def _illegal(self, move: object, kind: str) -> IllegalMoveError:
        detail = f"game over: {self._result.reason}" if self._result is not None else ""
        if not detail:
            detail = f"{kind} not among the {len(self._legal)} legal moves"
        return IllegalMoveError(move, game=self.name, sfen=self.sfen(), detail=detail)

    # --- playing -----------------------------------------------------------------------------

    def push_label(self, label: int) -> GameEnd | None:
        """Play the move a policy label denotes; returns the verdict if the game ended."""
        return self._apply(self.move_for_label(label))

    def push_usi(self, usi: str) -> GameEnd | None:
        """Play a move given in USI notation (validated)."""
        return self._apply(self.move_for_usi(usi))

    def push_move(self, move: int) -> GameEnd | None:
        """Play a cshogi move int (validated against the legal moves)."""
        try:
            if self._result is None and operator.index(move) in self._legal:
                return self._apply(operator.index(move))
        except TypeError:
            pass
        raise self._illegal(move, "move")

    def pop(self) -> int:
        """Undo the last move (also undoing its repetition count and any verdict)."""
        if not self._moves:
            raise IndexError(f"no move to undo in game {self.name!r}")
        self._board.pop()
        move = self._moves.pop()
        self._repetition.pop()
        self._turn ^= 1
        self._refresh_legal()
        self._result = None
        return move

    def _apply(self, move: int) -> GameEnd | None:
        """Push a move already known to be legal, then rule on the new position."""
        board = self._board
        board.push(move)
        self._moves.append(move)
        self._turn ^= 1
        count = self._repetition.push(board.zobrist_hash(), board.is_check())
        self._refresh_legal()
        self._result = self._rule(count)
        return self._result

    def _refresh_legal(self) -> None:
        """Legal moves of the new position; their labels are computed when first asked for
        (the environment encodes all its games' moves in one batch instead)."""
        self._legal = list(self._board.legal_moves)
        self._labels = None
        self._label_index = None

    def _label_array(self) -> np.ndarray:
        labels = self._labels
        if labels is None:
            labels = self._labels = labels_for_moves(self._legal, self._turn)
        return labels

    def _rule(self, occurrences: int) -> GameEnd | None:
        """The verdict on the position just reached, or None if play goes on."""
        ply = len(self._moves)
        if occurrences >= SENNICHITE_OCCURRENCES:
            checker = self._repetition.perpetual_checker()
            if checker is None:
                return GameEnd("repetition", None, ply)
            return GameEnd("perpetual_check", COLOR_NAMES[checker ^ 1], ply)
        if self._declaration and self._board.is_nyugyoku(cshogi.LAW_27):
            return GameEnd("declaration", COLOR_NAMES[self._turn], ply)
        if not self._legal:
            reason: EndReason = "checkmate" if self._board.is_check() else "no_legal_moves"
            return GameEnd(reason, COLOR_NAMES[self._turn ^ 1], ply)
        if self._max_plies is not None and ply >= self._max_plies:
            return GameEnd("max_plies", None, ply)
        return None

    # --- observations and records ------------------------------------------------------------

    def features(
        self, out1: np.ndarray | None = None, out2: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The two dlshogi input planes, side-to-move view (`encoding.board_features`)."""
        return board_features(self._board, out1, out2)

    def observation(self, out: np.ndarray | None = None) -> np.ndarray:
        """Both planes stacked: float32 of shape OBS_SHAPE (119, 9, 9)."""
        return board_observation(self._board, out)

    def record(self, black_name: str = "Black", white_name: str = "White") -> GameRecord:
        """The game so far as picklable data (start SFEN, moves, verdict, names)."""
        return GameRecord(
            self._start_sfen,
            tuple(self._moves),
            self._result,
            black_name,
            white_name,
            self.opening_plies,
        )

    def to_kif(self, black_name: str = "Black", white_name: str = "White") -> str:
        return self.record(black_name, white_name).to_kif()

    def to_csa(self, black_name: str = "Black", white_name: str = "White") -> str:
        return self.record(black_name, white_name).to_csa()

    def copy(self, *, declaration: bool | None = None) -> ShogiGame:
        """An independent game in the same state (replayed from the start position).

        `declaration` switches the declaration rule for the copy: it rules on the current position
        and later ones, not on earlier ones (the USI engine follows a GUI's game, where declaring
        is a choice, and searches a copy with the rule on)."""
        start, moves, max_plies, own, name, opening = self._replay_args()
        rule = own if declaration is None else declaration
        return _replay(start, moves, max_plies, rule, name, opening)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickle as start SFEN plus moves: cshogi boards themselves cannot be pickled."""
        return _replay, self._replay_args()

    def _replay_args(self) -> tuple[object, ...]:
        return (
            self._start_sfen,
            tuple(self._moves),
            self._max_plies,
            self._declaration,
            self.name,
            self.opening_plies,
        )

    def __repr__(self) -> str:
        state = self._result.reason if self._result else "playing"
        return f"ShogiGame({self.name!r}, ply={self.ply}, {state}, sfen={self.sfen()!r})"


def _replay(
    start_sfen: str,
    moves: tuple[int, ...],
    max_plies: int | None,
    declaration: bool,
    name: str,
    opening_plies: int,
) -> ShogiGame:
    """Rebuild a game by replaying its moves, each validated again (copies, unpickling).

    The declaration rule rules on the last position only: a game with the rule on never passed a
    position where it applied, but a copy that switched it on may have."""
    game = ShogiGame(start_sfen, max_plies=max_plies, declaration=False, name=name)
    for move in moves:
        game.push_move(move)
    game._declaration = declaration
    game._result = game._rule(game.repetitions())
    game.opening_plies = opening_plies
    return game
