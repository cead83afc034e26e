"""The ladder registry: the references' stored ratings and every ladder game, in SQLite.

One file (`ladder.sqlite`) is shared by all the runs in a directory (`logging.model_dir`, the
parent of each run), so that every agent laddered there is measured against the same fixed
reference ratings. Tables:

- `ladder_references`: one row per rated reference, keyed by its player name (which spells every
  setting that sets its strength: program, options, byoyomi, nodes): its label, rating, 95%
  interval, the number of games the fit rests on, how it was fitted (`joint`: with the agent of
  the ladder that first played it; `refit`: over every stored game) and when.
- `ladder_games`: every ladder game, from the agent's side, with the ladder (`session`) it was in.
- `ladder_ratings`: each ladder's result for its agent. A run's own Elo database (`elo.sqlite`)
  gets this table too, so `keisei ratings RUN` shows the run's ladder results.

Like the Elo registry, the file is in WAL mode; each write is one `BEGIN IMMEDIATE` transaction
that waits (busy timeout) for other writers. Any SQLite failure is raised as
`LadderRegistryError` naming the file.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from keisei.evaluation.ladder.ratings import Triple
from keisei.evaluation.result import GameResult

_T = TypeVar("_T")

_REFERENCES = """
CREATE TABLE IF NOT EXISTS ladder_references (
    player TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    rating REAL NOT NULL,
    low REAL NOT NULL,
    high REAL NOT NULL,
    games INTEGER NOT NULL,
    method TEXT NOT NULL CHECK (method IN ('joint', 'refit')),
    fitted REAL NOT NULL
)"""
_GAMES = """
CREATE TABLE IF NOT EXISTS ladder_games (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    agent TEXT NOT NULL,
    reference TEXT NOT NULL,
    agent_color TEXT NOT NULL CHECK (agent_color IN ('black', 'white')),
    outcome TEXT NOT NULL CHECK (outcome IN ('win', 'draw', 'loss')),
    reason TEXT NOT NULL,
    plies INTEGER NOT NULL,
    record_path TEXT,
    created REAL NOT NULL
)"""
_RATINGS = """
CREATE TABLE IF NOT EXISTS ladder_ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    agent TEXT NOT NULL,
    rating REAL NOT NULL,
    low REAL NOT NULL,
    high REAL NOT NULL,
    games INTEGER NOT NULL,
    registry TEXT NOT NULL,
    created REAL NOT NULL
)"""
SCORES = {"win": 1.0, "draw": 0.5, "loss": 0.0}
"""The agent's score for each outcome (draws count half)."""
ENGINE_FAILURES = ("engine_crash", "engine_timeout")
"""End reasons of a game lost because a program failed, not by play: left out of every fit."""


class LadderRegistryError(RuntimeError):
    """A ladder database could not be opened, read or written (the message names the file)."""


@dataclass(frozen=True)
class StoredRating:
    """A reference's rating as the registry holds it."""

    player: str
    label: str
    rating: float
    low: float
    high: float
    games: int
    """How many games the fit rests on."""
    method: str
    """`joint` (fitted with the agent of its first ladder) or `refit` (over all stored games)."""


@dataclass(frozen=True)
class AgentRating:
    """One ladder's rating of its agent, against the references' stored ratings."""

    session: str
    agent: str
    rating: float
    low: float
    high: float
    games: int
    registry: str
    """The ladder registry whose reference ratings it rests on."""
    created: float


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


class _Database:
    """One SQLite file in WAL mode with the given tables; errors name the file."""

    def __init__(self, path: str | Path, tables: Iterable[str], *, timeout_s: float) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        deadline = time.monotonic() + timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise self.error("opening it", exc) from exc
        try:
            self._db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            # Switching to WAL needs the file to itself: SQLite refuses at once, without its busy
            # handler, while another process opens it too; so retry until the deadline.
            self._retry(lambda: self._db.execute("PRAGMA journal_mode=WAL"), deadline)
            with self.write():
                for table in tables:
                    self._db.execute(table)
        except BaseException:
            self._db.close()
            raise

    def _retry(self, action: Callable[[], _T], deadline: float) -> _T:
        pause = 0.002
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise self.error("switching it to WAL mode", exc) from exc
                time.sleep(random.uniform(pause / 2, pause))
                pause = min(pause * 2, 0.05)
            except sqlite3.Error as exc:
                raise self.error("opening it", exc) from exc

    def error(self, doing: str, exc: BaseException) -> LadderRegistryError:
        return LadderRegistryError(f"ladder database {self.path}: {doing} failed: {exc}")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: committed, or rolled back and raised."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self.error("a write", exc) from exc

    def read(self, query: str, parameters: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._db.execute(query, parameters).fetchall())
        except sqlite3.Error as exc:
            raise self.error("a read", exc) from exc

    def close(self) -> None:
        self._db.close()

    def add_agent_rating(self, rating: AgentRating) -> None:
        with self.write() as db:
            db.execute(
                "INSERT INTO ladder_ratings (session, agent, rating, low, high, games, registry, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rating.session, rating.agent, rating.rating, rating.low, rating.high,
                 rating.games, rating.registry, rating.created),
            )  # fmt: skip

    def agent_ratings(self) -> list[AgentRating]:
        rows = self.read(
            "SELECT session, agent, rating, low, high, games, registry, created "
            "FROM ladder_ratings ORDER BY id"
        )
        return [AgentRating(*row) for row in rows]


class LadderRegistry(_Database):
    """The shared file: stored reference ratings, ladder games, agents' ladder ratings."""

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0) -> None:
        super().__init__(path, (_REFERENCES, _GAMES, _RATINGS), timeout_s=timeout_s)

    def __enter__(self) -> LadderRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stored(self) -> dict[str, StoredRating]:
        """Every rated reference, by player name."""
        rows = self.read(
            "SELECT player, label, rating, low, high, games, method FROM ladder_references"
        )
        return {str(row[0]): StoredRating(*row) for row in rows}

    def store(self, ratings: Iterable[StoredRating]) -> None:
        """Set (or replace) these references' stored ratings, in one transaction."""
        now = time.time()
        with self.write() as db:
            for r in ratings:
                db.execute(
                    "INSERT OR REPLACE INTO ladder_references (player, label, rating, low, high, "
                    "games, method, fitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.player, r.label, r.rating, r.low, r.high, r.games, r.method, now),
                )

    def add_game(self, session: str, agent: str, result: GameResult) -> None:
        """One ladder game, given from the agent's side (`result.opponent` is the reference)."""
        with self.write() as db:
            db.execute(
                "INSERT INTO ladder_games (session, agent, reference, agent_color, outcome, "
                "reason, plies, record_path, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session, agent, result.opponent, result.agent_color, result.outcome,
                 result.reason, result.plies, result.record_path, time.time()),
            )  # fmt: skip

    def games(self) -> list[Triple]:
        """Every stored game as (agent, reference, agent's score), but those a program lost by
        crashing or hanging (they say nothing about strength)."""
        rows = self.read(
            "SELECT agent, reference, outcome FROM ladder_games WHERE reason NOT IN (?, ?) "
            "ORDER BY id",
            ENGINE_FAILURES,
        )
        return [(str(agent), str(reference), SCORES[str(outcome)])
                for agent, reference, outcome in rows]  # fmt: skip

    def references(self) -> set[str]:
        """Every player that has played as a reference."""
        return {str(row[0]) for row in self.read("SELECT DISTINCT reference FROM ladder_games")}


def record_agent_rating(database: str | Path, rating: AgentRating, timeout_s: float = 60.0) -> None:
    """Add a ladder result to `database` (a run's Elo database), creating its table if needed."""
    db = _Database(database, (_RATINGS,), timeout_s=timeout_s)
    try:
        db.add_agent_rating(rating)
    finally:
        db.close()


def read_agent_ratings(database: str | Path) -> list[AgentRating]:
    """The ladder results stored in `database` (none when it has no ladder table); read only."""
    path = Path(database)
    if not path.is_file():
        return []
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LadderRegistryError(f"ladder database {path}: cannot open it: {exc}") from exc
    try:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ladder_ratings'"
        ).fetchone()
        if found is None:
            return []
        rows = db.execute(
            "SELECT session, agent, rating, low, high, games, registry, created "
            "FROM ladder_ratings ORDER BY id"
        ).fetchall()
    except sqlite3.Error as exc:
        raise LadderRegistryError(f"ladder database {path}: a read failed: {exc}") from exc
    finally:
        db.close()
    return [AgentRating(*row) for row in rows]


def read_player_names(database: str | Path) -> set[str]:
    """Every agent and reference named in the ladder database `database` (its games and its
    agents' ratings), read only; none when the file or those tables do not exist."""
    path = Path(database)
    if not path.is_file():
        return set()
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LadderRegistryError(f"ladder database {path}: cannot open it: {exc}") from exc
    queries = {
        "ladder_games": "SELECT agent FROM ladder_games UNION SELECT reference FROM ladder_games",
        "ladder_ratings": "SELECT agent FROM ladder_ratings",
    }
    names: set[str] = set()
    try:
        listed = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        tables = {str(row[0]) for row in listed}
        for table, query in queries.items():
            if table in tables:
                names.update(str(row[0]) for row in db.execute(query))
    except sqlite3.Error as exc:
        raise LadderRegistryError(f"ladder database {path}: a read failed: {exc}") from exc
    finally:
        db.close()
    return names
