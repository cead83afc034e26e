"""The game layer: Shogi rules on top of cshogi, the dlshogi encoding, self-play environment,
game records and perft. See DESIGN.md, section "The game"."""

from keisei.shogi.encoding import (
    FEATURES1_NUM,
    FEATURES2_NUM,
    NUM_FEATURE_PLANES,
    NUM_LABELS,
    OBS_SHAPE,
    move_label,
)
from keisei.shogi.errors import IllegalMoveError
from keisei.shogi.game import DEFAULT_MAX_PLIES, ShogiGame
from keisei.shogi.outcome import BLACK, COLOR_NAMES, END_REASONS, WHITE, Color, EndReason, GameEnd
from keisei.shogi.perft import perft
from keisei.shogi.records import GameRecord
from keisei.shogi.sfen import InvalidSfenError, normalize_sfen
from keisei.shogi.tactics import (
    PIECE_VALUES,
    capture_value,
    captured_piece,
    gives_mate,
    mate_in_one,
)
from keisei.shogi.vec_env import StepResult, VecShogiEnv

__all__ = [
    "BLACK",
    "COLOR_NAMES",
    "DEFAULT_MAX_PLIES",
    "END_REASONS",
    "FEATURES1_NUM",
    "FEATURES2_NUM",
    "NUM_FEATURE_PLANES",
    "NUM_LABELS",
    "OBS_SHAPE",
    "PIECE_VALUES",
    "WHITE",
    "Color",
    "EndReason",
    "GameEnd",
    "GameRecord",
    "IllegalMoveError",
    "InvalidSfenError",
    "ShogiGame",
    "StepResult",
    "VecShogiEnv",
    "capture_value",
    "captured_piece",
    "gives_mate",
    "mate_in_one",
    "move_label",
    "normalize_sfen",
    "perft",
]
