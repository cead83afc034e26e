"""Observation planes and the policy-label action space, as dlshogi defines them.

The observation is the pair of dlshogi input feature arrays (`make_input_features`), always from
the side to move's point of view (cshogi rotates the board when White is to move). An action is
one of the 2187 dlshogi move labels: 27 move kinds (10 directions, the same 10 with promotion,
7 drops) times 81 destination squares, the square also seen from the side to move.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import cshogi
import numpy as np
from cshogi import dlshogi

FEATURES1_NUM: Final[int] = int(dlshogi.FEATURES1_NUM)
FEATURES2_NUM: Final[int] = int(dlshogi.FEATURES2_NUM)
NUM_FEATURE_PLANES: Final[int] = FEATURES1_NUM + FEATURES2_NUM
OBS_SHAPE: Final[tuple[int, int, int]] = (NUM_FEATURE_PLANES, 9, 9)
NUM_SQUARES: Final[int] = 81
NUM_MOVE_KINDS: Final[int] = 27
NUM_LABELS: Final[int] = NUM_MOVE_KINDS * NUM_SQUARES

MOVE16_MASK: Final[int] = 0xFFFF
_DROP_FROM: Final[range] = range(NUM_SQUARES, NUM_SQUARES + 7)  # cshogi: 81 + piece type - 1
_PROMOTION_BIT: Final[int] = 1 << 14

make_move_label = dlshogi.make_move_label
"""`make_move_label(move, color) -> int`: the dlshogi label of a cshogi move for the mover."""


def move_label(move: int, color: int) -> int:
    """The policy label of cshogi move `move` played by `color` (0 black, 1 white)."""
    return int(make_move_label(move, color))


def _build_label_table() -> np.ndarray:
    """`make_move_label` for every (color, 16-bit move) a legal move can have; -1 elsewhere.

    A label depends only on the move's low 16 bits (destination, origin or dropped piece,
    promotion) and the mover, so one lookup replaces a Python-level call per legal move.
    """
    table = np.full((2, 1 << 15), -1, dtype=np.intp)
    squares = range(NUM_SQUARES)
    for color in (0, 1):
        row = table[color]
        for to in squares:
            for origin in squares:
                if origin != to:
                    move = to | origin << 7
                    row[move] = make_move_label(move, color)
                    row[move | _PROMOTION_BIT] = make_move_label(move | _PROMOTION_BIT, color)
            for origin in _DROP_FROM:
                row[to | origin << 7] = make_move_label(to | origin << 7, color)
    table.setflags(write=False)
    return table


LABEL_TABLE: Final[np.ndarray] = _build_label_table()
"""LABEL_TABLE[color][move & 0xFFFF] == make_move_label(move, color) for every legal move."""
_FLAT_LABEL_TABLE: Final[np.ndarray] = LABEL_TABLE.reshape(-1)
COLOR_SHIFT: Final[int] = 15
"""LABEL_TABLE.reshape(-1)[color << COLOR_SHIFT | move16] is the same lookup, flattened."""


def labels_for_moves(moves: Sequence[int] | np.ndarray, color: int) -> np.ndarray:
    """Labels (intp) of legal cshogi moves all played by `color`: one table lookup."""
    return LABEL_TABLE[color][np.asarray(moves, dtype=np.int64) & MOVE16_MASK]


def labels_for_mixed_moves(moves: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Labels of legal moves (int64 array) whose movers are `colors` (0/1 per move)."""
    return _FLAT_LABEL_TABLE[(colors.astype(np.int64) << COLOR_SHIFT) | (moves & MOVE16_MASK)]


def label_parts(label: int) -> tuple[int, int]:
    """Split a label into (move kind 0..26, destination square 0..80 from the mover's view)."""
    if not 0 <= label < NUM_LABELS:
        raise ValueError(f"label {label} is outside 0..{NUM_LABELS - 1}")
    return divmod(label, NUM_SQUARES)


def empty_features() -> tuple[np.ndarray, np.ndarray]:
    """Fresh zeroed buffers of the shapes `make_input_features` writes."""
    return (
        np.zeros((FEATURES1_NUM, 9, 9), dtype=np.float32),
        np.zeros((FEATURES2_NUM, 9, 9), dtype=np.float32),
    )


def check_feature_buffer(array: np.ndarray, planes: int, what: str) -> None:
    """cshogi writes through the raw buffer pointer: refuse anything it would scribble past."""
    if (
        not isinstance(array, np.ndarray)
        or array.dtype != np.float32
        or array.shape != (planes, 9, 9)
        or not array.flags.c_contiguous
        or not array.flags.writeable
    ):
        raise ValueError(
            f"{what} must be a writeable C-contiguous float32 array of shape ({planes}, 9, 9)"
        )


write_features = dlshogi.make_input_features
"""`write_features(board, out1, out2)`: fill both planes (buffers already checked by the caller)."""


def check_feature_layout() -> None:
    """cshogi can switch to a wider second plane set (`use_nyugyoku_features`) process-wide;
    buffers sized at import would then be overrun. Refuse to go on if that happened."""
    if dlshogi.FEATURES2_NUM != FEATURES2_NUM:
        raise RuntimeError(
            f"cshogi.dlshogi now writes {dlshogi.FEATURES2_NUM} second-set planes, keisei was "
            f"built for {FEATURES2_NUM}: do not call use_nyugyoku_features"
        )


def board_features(
    board: cshogi.Board, out1: np.ndarray | None = None, out2: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The two dlshogi input planes of `board`, (62, 9, 9) and (57, 9, 9) float32, side-to-move
    view; written into `out1`/`out2` when both are given."""
    if out1 is None and out2 is None:
        out1, out2 = empty_features()
    if out1 is None or out2 is None:
        raise ValueError("give both feature buffers or neither")
    check_feature_layout()
    check_feature_buffer(out1, FEATURES1_NUM, "features1")
    check_feature_buffer(out2, FEATURES2_NUM, "features2")
    write_features(board, out1, out2)
    return out1, out2


def board_observation(board: cshogi.Board, out: np.ndarray | None = None) -> np.ndarray:
    """Both planes of `board` stacked: float32 of shape OBS_SHAPE (119, 9, 9)."""
    if out is None:
        out = np.empty(OBS_SHAPE, dtype=np.float32)
    elif out.shape != OBS_SHAPE or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"observation buffer must be C-contiguous float32 {OBS_SHAPE}")
    board_features(board, out[:FEATURES1_NUM], out[FEATURES1_NUM:])
    return out
