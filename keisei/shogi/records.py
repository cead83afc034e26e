"""Game records: a finished (or running) game as data, and its KIF, CSA and USI renderings.

A `GameRecord` holds only builtin types (start SFEN, cshogi move ints, the verdict, names), so it
pickles across processes, unlike a cshogi board. KIF and CSA are written so that any Shogi GUI
and cshogi's own parsers read them back; the result reason is also written as a comment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import cshogi
from cshogi.KIF import board_to_bod, move_to_kif

from keisei.shogi.outcome import COLOR_NAMES, GameEnd

_KIF_COLOR = {"black": "先手", "white": "後手"}
_STARTPOS_FIELDS = cshogi.STARTING_SFEN.split()[:3]


def is_standard_start(sfen: str) -> bool:
    """True for the usual starting position, whatever its move number field says."""
    return sfen.split()[:3] == _STARTPOS_FIELDS


@dataclass(frozen=True)
class GameRecord:
    """One game: where it started, the moves played, and how it ended (None while running).

    `opening_plies` counts the leading moves that were chosen at random to vary the opening,
    not by the players.
    """

    start_sfen: str
    moves: tuple[int, ...]
    result: GameEnd | None
    black_name: str = "Black"
    white_name: str = "White"
    opening_plies: int = 0

    @property
    def plies(self) -> int:
        return len(self.moves)

    @property
    def usi_moves(self) -> list[str]:
        return [cshogi.move_to_usi(move) for move in self.moves]

    def usi_position(self) -> str:
        """`sfen <start> moves <m1> <m2> ...`, the argument of USI's `position` command."""
        text = f"sfen {self.start_sfen}"
        return f"{text} moves {' '.join(self.usi_moves)}" if self.moves else text

    def final_board(self) -> cshogi.Board:
        """A board replayed to the last position of the record."""
        board = cshogi.Board(self.start_sfen)
        for move in self.moves:
            board.push(move)
        return board

    def _names(self, black_name: str | None, white_name: str | None) -> tuple[str, str]:
        return black_name or self.black_name, white_name or self.white_name

    def _summary(self) -> str:
        if self.result is None:
            return "unfinished"
        winner = self.result.winner or "none"
        return f"end={self.result.reason} winner={winner} plies={self.result.plies}"

    def to_kif(
        self,
        black_name: str | None = None,
        white_name: str | None = None,
        start_time: datetime | None = None,
    ) -> str:
        """The game in KIF (Japanese notation), as a string; save it as UTF-8 `.kifu`."""
        black, white = self._names(black_name, white_name)
        lines = [f"# KIF exported by Keisei: {self._summary()}"]
        if start_time is not None:
            lines.append("開始日時：" + start_time.strftime("%Y/%m/%d %H:%M:%S"))
        if is_standard_start(self.start_sfen):
            lines.append("手合割：平手")
        else:
            lines.append(board_to_bod(cshogi.Board(self.start_sfen)))
        lines += [f"先手：{black}", f"後手：{white}", "手数----指手---------消費時間--"]
        previous: int | None = None
        for number, move in enumerate(self.moves, start=1):
            text = move_to_kif(move, previous)
            lines.append(f"{number:>4} {_kif_pad(text, move)}   ( 0:00/00:00:00)")
            previous = move
        lines += _kif_ending(self.result, len(self.moves))
        return "\n".join(lines) + "\n"

    def to_csa(self, black_name: str | None = None, white_name: str | None = None) -> str:
        """The game in CSA format (V2.2), as a string."""
        black, white = self._names(black_name, white_name)
        lines = ["V2.2", f"N+{black}", f"N-{white}", f"'keisei: {self._summary()}"]
        board = cshogi.Board(self.start_sfen)
        if is_standard_start(self.start_sfen):
            lines += ["PI", "+"]
        else:
            lines.append(board.csa_pos().rstrip("\n"))
        turn = board.turn
        for move in self.moves:
            lines.append(("+" if turn == 0 else "-") + cshogi.move_to_csa(move))
            turn ^= 1
        if self.result is not None:
            lines.append(_csa_ending(self.result))
        return "\n".join(lines) + "\n"


def _kif_pad(text: str, move: int) -> str:
    if cshogi.move_is_drop(move):
        return text + "    "
    return text if cshogi.move_is_promotion(move) else text + "  "


def _kif_ending(result: GameEnd | None, plies: int) -> list[str]:
    if result is None:
        return [f"{plies + 1:>4} 中断", f"まで{plies}手で中断"]
    winner = _KIF_COLOR[result.winner] if result.winner else ""
    endings = {
        "checkmate": ("詰み", f"{winner}の勝ち"),
        "no_legal_moves": ("投了", f"{winner}の勝ち"),
        "repetition": ("千日手", "千日手"),
        # The side to move wins because the other side's checks made the cycle: a foul.
        "perpetual_check": ("反則勝ち", f"{winner}の反則勝ち"),
        "declaration": ("入玉勝ち", f"{winner}の入玉勝ち"),
        "max_plies": ("持将棋", "持将棋"),
    }
    word, verdict = endings[result.reason]
    return [f"{plies + 1:>4} {word}", f"まで{plies}手で{verdict}"]


def _csa_ending(result: GameEnd) -> str:
    if result.reason == "perpetual_check":
        loser = COLOR_NAMES.index(result.winner or "black") ^ 1
        return "%+ILLEGAL_ACTION" if loser == 0 else "%-ILLEGAL_ACTION"
    return {
        "checkmate": "%TSUMI",
        "no_legal_moves": "%TORYO",
        "repetition": "%SENNICHITE",
        "declaration": "%KACHI",
        "max_plies": "%MAX_MOVES",
    }[result.reason]
