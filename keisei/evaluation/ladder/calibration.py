"""The calibration: the references' ratings from games among themselves, in a small JSON file.

A reference's rating must not depend on which agent happened to play it first, so the ladder
takes the ratings of its references from a calibration: neighbouring references (in the order of
`ladder.references`) played against each other (`recalibrate.py`), rated jointly with random
fixed at 0, and written down with everything that produced them (the engine's name and version,
each reference's program, options and limits, the games of each neighbouring pair, the date).
Keisei ships one (`calibration.json` in this package, made for the default ladder);
`keisei ladder --recalibrate` makes another.

Which file: `ladder.calibration.file` when set; else `ladder_calibration.json` beside the runs
(`<logging.model_dir>`, next to `ladder.sqlite`) when `--recalibrate` wrote one there; else the
shipped one. A file that is missing (when named), unreadable or malformed is a
`CalibrationError` naming it: a ladder never silently plays without its ratings.

A reference is calibrated when its player name (which spells every setting that sets its
strength: program, options, byoyomi, nodes) is in the file: its rating is then fixed, and no
agent's games ever move it. Any other reference (a user's own, or one whose settings were
changed) is rated as before the calibration existed, from the agents' games, and kept in
`ladder.sqlite`; the ladder says so once, naming `--recalibrate`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keisei.config import ConfigError, LadderConfig, LadderReference, parse_opponent_spec
from keisei.evaluation.ladder.registry import StoredRating
from keisei.evaluation.players.usi_client import UsiEngine, UsiError
from keisei.log import get_logger

_log = get_logger("evaluation.ladder")

FORMAT = 1
"""The version of the file's layout."""
SHIPPED_CALIBRATION = Path(__file__).with_name("calibration.json")
"""The calibration shipped with Keisei, for the default ladder."""
BESIDE_THE_RUNS = "ladder_calibration.json"
"""The name of the file `--recalibrate` writes beside the runs (next to `ladder.sqlite`)."""


class CalibrationError(ConfigError):
    """A calibration file is missing, unreadable or malformed (the message names the file)."""


@dataclass(frozen=True)
class CalibratedReference:
    """One reference of a calibration, with the settings it was played with and its rating."""

    name: str
    """Its label in `ladder.references` when it was calibrated."""
    player: str
    """Its player name in the registries (what a ladder's reference is matched by)."""
    opponent: str
    options: dict[str, str]
    byoyomi_ms: int | None
    nodes: int | None
    rating: float
    low: float
    high: float
    """The 95% interval of the rating (random = 0, exact), from the calibration games."""
    games: int
    """The calibration games it played."""

    def stored(self) -> StoredRating:
        """As the ladder registry's ratings are handed around (method `calibrated`)."""
        return StoredRating(self.player, self.name, self.rating, self.low, self.high, self.games,
                            "calibrated")  # fmt: skip


@dataclass(frozen=True)
class Gap:
    """What one pair of neighbouring references showed: the stronger one's lead in Elo."""

    lower: str
    upper: str
    """The two references' names (`lower` listed first)."""
    games: int
    wins: int
    draws: int
    losses: int
    """Of the `upper` reference."""
    elo: float
    low: float
    high: float
    """The gap and its 95% interval (Elo, the pair's games alone)."""

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class Calibration:
    """A calibration file's content."""

    references: tuple[CalibratedReference, ...]
    gaps: tuple[Gap, ...]
    engines: dict[str, str]
    """Program → the name and version it gave (`id name`), for each usi: program played."""
    settings: dict[str, Any]
    """How the games were played and when to stop (max plies, openings, seed, interval...)."""
    created: str
    """When (ISO 8601)."""
    command: str = ""
    """What made it."""
    path: Path | None = field(default=None, compare=False)
    """The file it was read from (None: not read from a file)."""

    def by_player(self) -> dict[str, CalibratedReference]:
        return {reference.player: reference for reference in self.references}

    def ratings(self) -> dict[str, StoredRating]:
        """Player name → fixed rating (random included, at 0)."""
        return {reference.player: reference.stored() for reference in self.references}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created": self.created,
            "command": self.command,
            "engines": self.engines,
            "settings": self.settings,
            "references": [asdict(reference) for reference in self.references],
            "gaps": [asdict(gap) for gap in self.gaps],
        }


def write_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write `calibration` to `path` (atomically: a reader sees the old file or the new)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.writing")
    text = json.dumps(calibration.to_json(), indent=2, ensure_ascii=False) + "\n"
    try:
        scratch.write_text(text, encoding="utf-8")
        scratch.replace(path)
    except OSError as exc:
        raise CalibrationError(f"calibration file {path}: cannot write it: {exc}") from exc
    return path


def read_calibration(path: str | Path) -> Calibration:
    """The calibration in `path`; `CalibrationError` naming the file if it is missing,
    unreadable or malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalibrationError(
            f"calibration file {path} does not exist (make one with `keisei ladder "
            "--recalibrate`, or set ladder.calibration.file)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"calibration file {path} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"calibration file {path} is not valid JSON: {exc}") from None
    try:
        return _parse(data, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(
            f"calibration file {path} is malformed ({exc}); remake it with `keisei ladder "
            "--recalibrate`"
        ) from None


def _parse(data: Any, path: Path) -> Calibration:
    if not isinstance(data, dict):
        raise TypeError("its top level is not an object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
    references = tuple(_reference(item) for item in data["references"])
    gaps = tuple(_gap(item) for item in data["gaps"])
    if not references:
        raise ValueError("no references")
    players = [reference.player for reference in references]
    if len(set(players)) != len(players):
        raise ValueError("a reference is listed twice")
    engines = data["engines"]
    settings = data["settings"]
    if not isinstance(engines, dict) or not isinstance(settings, dict):
        raise TypeError("'engines' and 'settings' must be objects")
    return Calibration(references, gaps, {str(k): str(v) for k, v in engines.items()}, settings,
                       str(data["created"]), str(data.get("command", "")), path)  # fmt: skip


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} is not a finite number: {value!r}")
    return float(value)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} is not a count: {value!r}")
    return value


def _limit(value: Any, what: str) -> int | None:
    return None if value is None else _count(value, what)


def _reference(item: Any) -> CalibratedReference:
    if not isinstance(item, dict):
        raise TypeError("a reference is not an object")
    name = str(item["name"])
    options = item.get("options", {})
    if not isinstance(options, dict):
        raise TypeError(f"reference {name!r}: options must be an object")
    rating = _number(item["rating"], f"reference {name!r}: rating")
    low, high = _number(item["low"], f"{name!r}: low"), _number(item["high"], f"{name!r}: high")
    if not low <= rating <= high:
        raise ValueError(f"reference {name!r}: rating {rating} outside its interval")
    return CalibratedReference(
        name, str(item["player"]), str(item["opponent"]),
        {str(k): str(v) for k, v in options.items()},
        _limit(item.get("byoyomi_ms"), f"{name!r}: byoyomi_ms"),
        _limit(item.get("nodes"), f"{name!r}: nodes"), rating, low, high,
        _count(item["games"], f"{name!r}: games"),
    )  # fmt: skip


def _gap(item: Any) -> Gap:
    if not isinstance(item, dict):
        raise TypeError("a gap is not an object")
    what = f"gap {item.get('lower')!r} to {item.get('upper')!r}"
    counts = [_count(item[key], f"{what}: {key}") for key in ("games", "wins", "draws", "losses")]
    if counts[0] != sum(counts[1:]):
        raise ValueError(f"{what}: games is not wins + draws + losses")
    elo, low, high = (_number(item[key], f"{what}: {key}") for key in ("elo", "low", "high"))
    return Gap(str(item["lower"]), str(item["upper"]), *counts, elo, low, high)


def calibration_file(settings: LadderConfig, runs_dir: str | Path) -> Path:
    """The file the ladder reads (see the module): `settings.calibration.file`, else the one
    beside the runs in `runs_dir` if there is one, else the shipped one."""
    if settings.calibration.file is not None:
        return Path(settings.calibration.file)
    beside = Path(runs_dir) / BESIDE_THE_RUNS
    return beside if beside.is_file() else SHIPPED_CALIBRATION


def recalibration_target(settings: LadderConfig, runs_dir: str | Path) -> Path:
    """Where `--recalibrate` writes: `settings.calibration.file`, else beside the runs."""
    if settings.calibration.file is not None:
        return Path(settings.calibration.file)
    return Path(runs_dir) / BESIDE_THE_RUNS


def warn_uncalibrated(names: Sequence[tuple[str, str]], calibration: Calibration) -> list[str]:
    """Say once, for the references (label, player name) not in `calibration`, that their
    ratings come from the agents' games; the labels of those."""
    known = calibration.by_player()
    missing = [label for label, player in names if player not in known and player != "random"]
    if missing:
        _log.warning(
            "%s not in the calibration %s (their settings differ from every calibrated "
            "reference): rated from the agents' games as they come (kept in ladder.sqlite), "
            "not on a fixed scale; `keisei ladder --recalibrate` calibrates them",
            ", ".join(repr(label) for label in missing), calibration.path or "(in memory)",
        )  # fmt: skip
    return missing


def check_engines(calibration: Calibration, found: Mapping[str, str]) -> None:
    """Warn where a program now names itself (`id name`) otherwise than when calibrated."""
    for program, identity in found.items():
        then = calibration.engines.get(program)
        if then is not None and then != identity:
            _log.warning(
                "%s is now %r but the calibration %s was made with %r: its ratings may not "
                "hold for it (`keisei ladder --recalibrate` remakes it)",
                program, identity, calibration.path, then,
            )  # fmt: skip


def engine_identity(opponent: str, timeout_s: float) -> str | None:
    """The name and version a usi: program gives (`id name`), or None for other opponents or an
    engine that does not answer within `timeout_s`."""
    kind, command = parse_opponent_spec(opponent)
    if kind != "usi":
        return None
    try:
        with UsiEngine(command, startup_timeout_s=timeout_s) as engine:
            return engine.engine_name
    except UsiError as exc:
        _log.warning("%s: cannot ask its name: %s", command, exc)
        return None


def engine_identities(references: Sequence[LadderReference], timeout_s: float) -> dict[str, str]:
    """Program → `id name` for every usi: program among `references`."""
    found: dict[str, str] = {}
    for reference in references:
        kind, command = parse_opponent_spec(reference.opponent)
        if kind == "usi" and command not in found:
            identity = engine_identity(reference.opponent, timeout_s)
            if identity is not None:
                found[command] = identity
    return found
