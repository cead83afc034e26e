"""Parsing what a USI GUI sends (`go`, `setoption`) and formatting what the engine answers.

Pure functions and small dataclasses, no I/O: the engine loop calls them and turns a
`UsiInputError` into an `info string` line, so malformed input never reaches the game state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

_GO_INT_FIELDS: Final = (
    "btime",
    "wtime",
    "byoyomi",
    "binc",
    "winc",
    "nodes",
    "movetime",
    "depth",
)
_GO_FLAGS: Final = ("infinite", "ponder")
MAX_CP: Final[int] = 30000
VALUE_SCALE_CP: Final[float] = 600.0
"""The usual Shogi engine convention: win rate p = 1 / (1 + exp(-cp / 600))."""


class UsiInputError(ValueError):
    """A command from the GUI that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class GoCommand:
    """The arguments of one `go` command (times in milliseconds; None when not given)."""

    btime: int | None = None
    wtime: int | None = None
    byoyomi: int | None = None
    binc: int | None = None
    winc: int | None = None
    nodes: int | None = None
    movetime: int | None = None
    depth: int | None = None
    infinite: bool = False
    ponder: bool = False
    mate: bool = False

    def remaining_ms(self, side: int) -> int | None:
        """The clock of `side` (0 black, 1 white)."""
        return self.btime if side == 0 else self.wtime

    def increment_ms(self, side: int) -> int:
        return (self.binc if side == 0 else self.winc) or 0

    @property
    def has_time_limit(self) -> bool:
        clocks = (self.btime, self.wtime, self.byoyomi, self.binc, self.winc, self.movetime)
        return any(value is not None for value in clocks)


def parse_go(words: list[str]) -> GoCommand:
    """Parse the words after `go`; unknown words or bad numbers raise `UsiInputError`."""
    fields: dict[str, int | bool] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word in _GO_FLAGS:
            fields[word] = True
            index += 1
        elif word == "mate":
            fields["mate"] = True
            index += 2 if index + 1 < len(words) else 1  # `go mate <ms>|infinite`
        elif word in _GO_INT_FIELDS:
            if index + 1 >= len(words):
                raise UsiInputError(f"go: {word} needs a number")
            fields[word] = _non_negative_int(words[index + 1], f"go {word}")
            index += 2
        else:
            raise UsiInputError(f"go: unknown argument {word!r}")
    return GoCommand(**fields)  # type: ignore[arg-type]


def _non_negative_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsiInputError(f"{what}: {text!r} is not an integer") from None
    if value < 0:
        # Some GUIs send a slightly negative clock when time ran out; treat it as zero.
        return 0
    return value


def parse_setoption(words: list[str]) -> tuple[str, str | None]:
    """`setoption name <id> [value <x>]` (names and values may contain spaces)."""
    if not words or words[0] != "name":
        raise UsiInputError("setoption: expected 'setoption name <id> [value <x>]'")
    if "value" in words[1:]:
        cut = words.index("value", 1)
        name, value = " ".join(words[1:cut]), " ".join(words[cut + 1 :])
    else:
        name, value = " ".join(words[1:]), None
    if not name:
        raise UsiInputError("setoption: the option name is missing")
    return name, value


def value_to_cp(value: float) -> int:
    """The value head's expected result in [-1, 1] as centipawns (logistic, scale 600)."""
    if math.isnan(value):
        return 0
    clipped = min(max(value, -0.9999), 0.9999)
    cp = VALUE_SCALE_CP * math.log((1.0 + clipped) / (1.0 - clipped))
    return int(round(min(max(cp, -MAX_CP), MAX_CP)))


def format_info(
    *,
    depth: int,
    seldepth: int,
    nodes: int,
    time_ms: int,
    score_cp: int | None = None,
    mate: int | None = None,
    pv: list[str] | None = None,
) -> str:
    """One `info` line; `mate` (plies, negative when being mated) replaces `score_cp`."""
    parts = [f"info depth {depth} seldepth {max(seldepth, depth)} nodes {nodes} time {time_ms}"]
    if time_ms > 0:
        parts.append(f"nps {nodes * 1000 // time_ms}")
    if mate is not None:
        parts.append(f"score mate {mate:+d}" if mate else "score mate 0")
    elif score_cp is not None:
        parts.append(f"score cp {score_cp}")
    if pv:
        parts.append("pv " + " ".join(pv))
    return " ".join(parts)


def info_string(text: str) -> str:
    """An `info string` line (one line: newlines in `text` are flattened)."""
    return "info string " + " ".join(text.split())
