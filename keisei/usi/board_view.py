"""The board as Rich text for `keisei play`: files 9..1 and ranks a..i as USI writes them,
pieces in hand, the last move's squares highlighted (the destination also marked `*`, for
terminals without colour).

Black's pieces are upper case (`P`, `+R`), White's lower case; the board is drawn from the
human player's side.
"""

from __future__ import annotations

from typing import Final

import cshogi
from rich.text import Text

_SYMBOLS: Final = cshogi.PIECE_SYMBOLS  # index piece & 15: '', 'p', 'l', ..., '+r'
_HAND_ORDER: Final = (6, 5, 4, 3, 2, 1, 0)  # R B G S N L P in cshogi's hand order P L N S G B R
_HAND_LETTERS: Final = "PLNSGBR"
_RANKS: Final = "abcdefghi"
BLACK_STYLE: Final = "bold"
WHITE_STYLE: Final = "bold red"
LAST_TO_STYLE: Final = "reverse"
LAST_FROM_STYLE: Final = "underline"


def square_name(square: int) -> str:
    """cshogi square index (file * 9 + rank) as USI writes it, e.g. 59 -> '7f'."""
    return f"{square // 9 + 1}{_RANKS[square % 9]}"


def _cell(piece: int) -> tuple[str, str]:
    if piece == 0:
        return " . ", ""
    symbol = _SYMBOLS[piece & 15]
    white = piece >= 16
    text = symbol if white else symbol.upper()
    return f"{text:>2} ", WHITE_STYLE if white else BLACK_STYLE


def _hand(counts: list[int]) -> str:
    parts = []
    for index in _HAND_ORDER:
        count = counts[index]
        if count:
            letter = _HAND_LETTERS[index]
            parts.append(letter if count == 1 else f"{letter}{count}")
    return " ".join(parts) or "-"


def render_board(board: cshogi.Board, last_move: int | None = None, viewer: int = 0) -> Text:
    """The position as Rich `Text`; `viewer` 0 puts Black at the bottom, 1 White."""
    pieces = board.pieces
    to_square = from_square = None
    if last_move:
        to_square = cshogi.move_to(last_move)
        if not cshogi.move_is_drop(last_move):
            from_square = cshogi.move_from(last_move)
    files = range(8, -1, -1) if viewer == 0 else range(9)
    ranks = range(9) if viewer == 0 else range(8, -1, -1)
    black_hand, white_hand = board.pieces_in_hand
    top_hand, bottom_hand = (white_hand, black_hand) if viewer == 0 else (black_hand, white_hand)
    top_name, bottom_name = ("White", "Black") if viewer == 0 else ("Black", "White")
    text = Text()
    text.append(f"{top_name} in hand: {_hand(top_hand)}\n")
    text.append("  " + "".join(f" {file + 1} " for file in files) + "\n")
    for rank in ranks:
        text.append("  ")
        for file in files:
            square = file * 9 + rank
            cell, style = _cell(pieces[square])
            if square == to_square:
                cell = cell[:2] + "*"  # visible without colours too
                style = f"{style} {LAST_TO_STYLE}".strip()
            elif square == from_square:
                style = f"{style} {LAST_FROM_STYLE}".strip()
            text.append(cell, style=style or None)
        text.append(f" {_RANKS[rank]}\n")
    text.append(f"{bottom_name} in hand: {_hand(bottom_hand)}")
    return text
