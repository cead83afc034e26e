"""The options the engine advertises after `usi` and accepts through `setoption`.

Names match case-insensitively. `USI_Hash` and `USI_Ponder`, which GUIs send to every engine,
are accepted and ignored (there is no hash table; pondering works through `go ponder` whatever
the option says). Anything else unknown, or a value out of range, raises `UsiInputError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from keisei.usi.protocol import UsiInputError

IGNORED: Final = frozenset({"usi_hash", "usi_ponder"})


@dataclass(frozen=True)
class Spin:
    """An integer option."""

    name: str
    default: int
    low: int
    high: int
    help: str

    def usi(self) -> str:
        bounds = f"min {self.low} max {self.high}"
        return f"option name {self.name} type spin default {self.default} {bounds}"

    def parse(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise UsiInputError(f"option {self.name}: {text!r} is not an integer") from None
        if not self.low <= value <= self.high:
            raise UsiInputError(f"option {self.name}: {value} is outside {self.low}..{self.high}")
        return value


@dataclass(frozen=True)
class Real:
    """A positive real number, carried as a USI string option."""

    name: str
    default: float
    help: str

    def usi(self) -> str:
        return f"option name {self.name} type string default {self.default}"

    def parse(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise UsiInputError(f"option {self.name}: {text!r} is not a number") from None
        if not (math.isfinite(value) and value > 0):
            raise UsiInputError(f"option {self.name}: {value} must be a positive number")
        return value


OPTIONS: Final[tuple[Spin | Real, ...]] = (
    Spin("Playouts", 0, 0, 1_000_000, "0: the policy's best move; N: PUCT search, N playouts"),
    Spin("BatchSize", 16, 1, 1024, "leaves evaluated per forward pass in the search"),
    Real("CPuct", 1.5, "exploration constant of the PUCT formula"),
    Spin("Threads", 1, 1, 256, "CPU threads for the network (torch intra-op threads)"),
    Spin("MoveOverhead", 100, 0, 10_000, "milliseconds kept in reserve on each move"),
)
_BY_NAME: Final = {option.name.lower(): option for option in OPTIONS}


class EngineOptions:
    """Current option values, keyed by the advertised names."""

    def __init__(self) -> None:
        self.values: dict[str, int | float] = {option.name: option.default for option in OPTIONS}

    def usi_lines(self) -> list[str]:
        return [option.usi() for option in OPTIONS]

    def set(self, name: str, value: str | None) -> str | None:
        """Set option `name`; returns the canonical name, or None for an ignored option."""
        key = name.lower()
        if key in IGNORED:
            return None
        option = _BY_NAME.get(key)
        if option is None:
            known = ", ".join(option.name for option in OPTIONS)
            raise UsiInputError(f"setoption: unknown option {name!r} (known: {known})")
        if value is None:
            raise UsiInputError(f"setoption: option {option.name} needs a value")
        self.values[option.name] = option.parse(value)
        return option.name

    def __getitem__(self, name: str) -> int | float:
        return self.values[name]
