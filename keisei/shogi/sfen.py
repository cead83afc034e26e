"""Strict SFEN checking before a string reaches cshogi.

cshogi's `set_sfen` aborts the whole process on some malformed strings (a C++ exception it does
not translate), silently accepts others (short ranks, no kings), and its move generator assumes a
legal position. Every SFEN the game layer accepts goes through `normalize_sfen` first.
"""

from __future__ import annotations

import re
from typing import Final

import cshogi

_HAND_RE: Final = re.compile(r"(\d*)([PLNSGBRplnsgbr])")
_PROMOTABLE: Final = set("PLNSBRplnsbr")
_PIECES: Final = set("PLNSGBRKplnsgbrk")
# How many of each piece a full set has, both sides together (promoted pieces count as base).
_PIECE_LIMITS: Final = {"P": 18, "L": 4, "N": 4, "S": 4, "G": 4, "B": 2, "R": 2, "K": 2}


class InvalidSfenError(ValueError):
    """A SFEN string that is malformed or describes an impossible position."""

    def __init__(self, sfen: str, why: str) -> None:
        self.sfen = sfen
        self.why = why
        super().__init__(f"invalid SFEN {sfen!r}: {why}")


def normalize_sfen(text: str) -> str:
    """Check `text` (with or without a leading `sfen `, with or without a move number) and
    return it as the four-field SFEN cshogi writes; raise `InvalidSfenError` otherwise."""
    sfen = text.strip()
    if sfen.startswith("sfen "):
        sfen = sfen[5:].strip()
    if sfen == "startpos":
        return cshogi.STARTING_SFEN
    fields = sfen.split()
    if len(fields) == 3:
        fields.append("1")
    if len(fields) != 4:
        raise InvalidSfenError(text, "expected board, side to move, hands and move number")
    board_text, turn, hands, number = fields
    counts: dict[str, int] = dict.fromkeys(_PIECE_LIMITS, 0)
    files_with_pawn: set[tuple[bool, int]] = set()
    ranks = board_text.split("/")
    if len(ranks) != 9:
        raise InvalidSfenError(text, f"the board has {len(ranks)} ranks, not 9")
    kings = {"K": 0, "k": 0}
    for rank_index, rank in enumerate(ranks):
        _check_rank(text, rank, rank_index, counts, kings, files_with_pawn)
    if kings != {"K": 1, "k": 1}:
        raise InvalidSfenError(text, "each side needs exactly one king")
    if turn not in ("b", "w"):
        raise InvalidSfenError(text, f"side to move must be 'b' or 'w', not {turn!r}")
    _check_hands(text, hands, counts)
    for piece, limit in _PIECE_LIMITS.items():
        if counts[piece] > limit:
            raise InvalidSfenError(text, f"more than {limit} pieces of kind {piece}")
    if not number.isdigit() or int(number) < 1:
        raise InvalidSfenError(text, f"move number must be a positive integer, not {number!r}")
    normalized = " ".join(fields)
    opponent_view = " ".join([board_text, "w" if turn == "b" else "b", hands, number])
    if cshogi.Board(opponent_view).is_check():
        raise InvalidSfenError(text, "the side that is not to move is in check")
    return normalized


def _check_rank(
    text: str,
    rank: str,
    rank_index: int,
    counts: dict[str, int],
    kings: dict[str, int],
    files_with_pawn: set[tuple[bool, int]],
) -> None:
    squares = 0
    promoted = False
    for char in rank:
        if char.isdigit():
            if promoted or char == "0":
                raise InvalidSfenError(text, f"bad rank {rank!r}")
            squares += int(char)
            continue
        if char == "+":
            if promoted:
                raise InvalidSfenError(text, f"bad rank {rank!r}")
            promoted = True
            continue
        if char not in _PIECES or (promoted and char not in _PROMOTABLE):
            raise InvalidSfenError(text, f"bad piece {char!r} in rank {rank!r}")
        black = char.isupper()
        kind = char.upper()
        counts[kind] += 1
        if kind == "K":
            kings[char] += 1
        if not promoted:
            # Distance to the owner's last rank: pieces that could never move again are illegal.
            to_last = rank_index if black else 8 - rank_index
            if (kind in "PL" and to_last == 0) or (kind == "N" and to_last <= 1):
                raise InvalidSfenError(text, f"{char} on rank {rank_index + 1} can never move")
            if kind == "P":
                file_key = (black, squares)
                if file_key in files_with_pawn:
                    raise InvalidSfenError(text, "two unpromoted pawns of one side on a file")
                files_with_pawn.add(file_key)
        promoted = False
        squares += 1
    if promoted or squares != 9:
        raise InvalidSfenError(text, f"rank {rank!r} does not cover 9 squares")


def _check_hands(text: str, hands: str, counts: dict[str, int]) -> None:
    if hands == "-":
        return
    position = 0
    for match in _HAND_RE.finditer(hands):
        if match.start() != position:
            break
        position = match.end()
        amount = int(match.group(1)) if match.group(1) else 1
        if amount < 1 or match.group(1).startswith("0"):
            raise InvalidSfenError(text, f"bad hand count in {hands!r}")
        counts[match.group(2).upper()] += amount
    if position != len(hands):
        raise InvalidSfenError(text, f"bad hands field {hands!r}")


def split_usi_position(words: list[str]) -> tuple[str, list[str]]:
    """Split the words of a USI `position` argument (`startpos|sfen <sfen> [moves m1 ...]`) into
    (normalized start SFEN, USI moves). Raises `InvalidSfenError` for a bad SFEN and a plain
    `ValueError` for any other form; the moves are not checked here."""
    if "moves" in words:
        cut = words.index("moves")
        head, moves = words[:cut], words[cut + 1 :]
    else:
        head, moves = words, []
    if head == ["startpos"]:
        return cshogi.STARTING_SFEN, moves
    if head and head[0] == "sfen":
        return normalize_sfen(" ".join(head[1:])), moves
    raise ValueError(f"not a USI position: {' '.join(words)!r}")
