"""Observation planes and the policy-label action space, as dlshogi defines them.

The observation is the pair of dlshogi input feature arrays (`make_input_features`), always from
the side to move's point of view (cshogi rotates the board when White is to move). An action is
one of the 2187 dlshogi move labels: 27 move kinds (10 directions, the same 10 with promotion,
7 drops) times 81 destination squares, the square also seen from the side to move.
"""

from __future__ import annotations

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

make_move_label = dlshogi.make_move_label
"""`make_move_label(move, color) -> int`: the dlshogi label of a cshogi move for the mover."""


def move_label(move: int, color: int) -> int:
    """The policy label of cshogi move `move` played by `color` (0 black, 1 white)."""
    return int(make_move_label(move, color))


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


def write_features(board: cshogi.Board, out1: np.ndarray, out2: np.ndarray) -> None:
    """Fill both dlshogi planes for `board` (buffers already checked by the caller)."""
    dlshogi.make_input_features(board, out1, out2)
