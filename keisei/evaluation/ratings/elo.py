"""The Elo registry: every evaluation game and every player of a run, in SQLite.

One database file per run (`elo.sqlite` in the run directory), in WAL mode so the trainer and a
background evaluation process can write at the same time; each write is one `BEGIN IMMEDIATE`
transaction and waits (busy timeout) rather than fails while another process holds the lock.

Several processes may open a new database at the same moment. Switching it to WAL mode needs the
file to itself, and SQLite answers "database is locked" at once there, without its busy handler;
so opening retries that switch and the schema creation with a short randomised backoff until
`timeout_s` has passed, then raises `EloDatabaseBusyError` naming the file. Nothing is ever
dropped quietly: a write either commits or raises (a failed `COMMIT` is retried, then rolled
back and raised; no transaction is left open for `close()` to discard with later games).

Ratings here are incremental per-game Elo (factor `k`) for the live display, with the anchor
player (the random player by default) fixed at `anchor_rating`. `keisei ratings` fits
maximum-likelihood ratings over all games instead (see `bradley_terry.py`).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from keisei.evaluation.ratings.bradley_terry import FittedRating, expected_score, fit_ratings
from keisei.evaluation.result import GameResult
from keisei.log import get_logger

_log = get_logger("evaluation.elo")
_T = TypeVar("_T")
RETRY_FIRST_S: Final = 0.002
"""The first pause before retrying a statement SQLite refused as busy; it doubles each time."""
RETRY_MAX_S: Final = 0.05
"""The longest pause between two tries (randomised down to half, so writers spread out)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS players (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    path TEXT,
    step INTEGER,
    rating REAL NOT NULL,
    games INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS games (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    black TEXT NOT NULL REFERENCES players(name),
    white TEXT NOT NULL REFERENCES players(name),
    result TEXT NOT NULL CHECK (result IN ('black', 'white', 'draw')),
    reason TEXT NOT NULL,
    plies INTEGER NOT NULL,
    step INTEGER,
    record_path TEXT,
    subject TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS games_step ON games(step);
"""


@dataclass(frozen=True)
class PlayerRow:
    name: str
    kind: str
    path: str | None
    step: int | None
    rating: float
    games: int


@dataclass(frozen=True)
class GameRow:
    id: int
    black: str
    white: str
    result: str
    reason: str
    plies: int
    step: int | None
    record_path: str | None
    subject: str | None
    """The player being evaluated in this game (None when not recorded)."""


_ALL_PLAYERS = "SELECT name, kind, path, step, rating, games FROM players ORDER BY created, name"


class EloDatabaseBusyError(sqlite3.OperationalError):
    """The Elo database stayed locked by other processes for longer than the timeout."""


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock (worth retrying)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


class EloRegistry:
    """Players, games and incremental Elo ratings of one run.

    `timeout_s` bounds every wait for another process's lock: opening, each write and its
    commit. Past it, `EloDatabaseBusyError` names the file and what was being done.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        k: float = 32.0,
        anchor: str = "random",
        anchor_rating: float = 0.0,
        timeout_s: float = 60.0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"Elo registry {path}: timeout_s must be positive, got {timeout_s}")
        self.path = Path(path)
        self.k = k
        self.anchor = anchor
        self.anchor_rating = anchor_rating
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout_s
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        try:
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            mode = self._retry(self._enable_wal, deadline, "switching it to WAL mode")
            if mode.lower() != "wal":  # e.g. a file system without shared memory
                _log.warning("Elo database %s: journal mode is %s, not WAL", self.path, mode)
            self._retry(lambda: self._create_schema(deadline), deadline, "creating its tables")
        except BaseException:
            self._db.close()
            raise

    def _enable_wal(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0])

    def _create_schema(self, deadline: float) -> None:
        with self._write(deadline):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(games)")}
            if "subject" not in columns:  # databases written before the column existed
                self._db.execute("ALTER TABLE games ADD COLUMN subject TEXT")

    def _retry(self, action: Callable[[], _T], deadline: float, doing: str) -> _T:
        """`action()`, tried again after a short randomised pause each time SQLite answers busy
        or locked, until `deadline`; then `EloDatabaseBusyError` naming the file."""
        pause = RETRY_FIRST_S
        while True:
            try:
                return action()
            except EloDatabaseBusyError:
                raise
            except sqlite3.OperationalError as exc:
                remaining = deadline - time.monotonic()
                if not _busy(exc):
                    raise
                if remaining <= 0:
                    raise EloDatabaseBusyError(
                        f"Elo database {self.path}: still locked by another process after "
                        f"{self.timeout_s:g} s while {doing} ({exc})"
                    ) from exc
                time.sleep(min(remaining, random.uniform(pause / 2, pause)))
                pause = min(pause * 2, RETRY_MAX_S)

    @contextmanager
    def _write(self, deadline: float | None = None) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction: committed, or rolled back and the error raised.
        Waits for other writers until `deadline` (default: `timeout_s` from now)."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout_s
        self._retry(lambda: self._db.execute("BEGIN IMMEDIATE"), deadline, "starting a write")
        try:
            yield self._db
            self._retry(lambda: self._db.execute("COMMIT"), deadline, "committing a write")
        except BaseException:
            if self._db.in_transaction:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error as rollback_error:
                    _log.error("Elo database %s: rollback failed: %s", self.path, rollback_error)
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EloRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ players

    def ensure_player(
        self,
        name: str,
        kind: str,
        *,
        path: str | None = None,
        step: int | None = None,
        initial_rating: float | None = None,
    ) -> PlayerRow:
        """Register a player once; a new one starts at `initial_rating` (default: anchor's)."""
        rating = self.anchor_rating if initial_rating is None else initial_rating
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO players (name, kind, path, step, rating, games, created) "
                "VALUES (?, ?, ?, ?, ?, 0, ?)",
                (name, kind, path, step, rating, time.time()),
            )
        player = self.player(name)
        assert player is not None
        return player

    def player(self, name: str) -> PlayerRow | None:
        row = self._db.execute(
            "SELECT name, kind, path, step, rating, games FROM players WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else PlayerRow(*row)

    def players(self) -> list[PlayerRow]:
        rows = self._db.execute(_ALL_PLAYERS).fetchall()
        return [PlayerRow(*row) for row in rows]

    def rating(self, name: str) -> float:
        player = self.player(name)
        if player is None:
            raise KeyError(f"no player {name!r} in {self.path}")
        return player.rating

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        rows = self._db.execute(
            "SELECT name, rating FROM players WHERE games > 0 ORDER BY rating DESC LIMIT ?", (n,)
        ).fetchall()
        return [(name, rating) for name, rating in rows]

    def latest_agent(self) -> PlayerRow | None:
        """The most recently evaluated training snapshot."""
        row = self._db.execute(
            "SELECT name, kind, path, step, rating, games FROM players WHERE kind = 'agent' "
            "ORDER BY step DESC, created DESC LIMIT 1"
        ).fetchone()
        return None if row is None else PlayerRow(*row)

    # -------------------------------------------------------------------- games

    def record_game(
        self,
        black: str,
        white: str,
        winner: int | None,
        reason: str,
        plies: int,
        *,
        step: int | None = None,
        record_path: str | None = None,
        subject: str | None = None,
    ) -> tuple[float, float]:
        """Store a game and update both ratings (the anchor stays fixed); new (black, white)."""
        result = "draw" if winner is None else ("black", "white")[winner]
        score = 0.5 if winner is None else float(winner == 0)
        with self._write() as db:
            ratings = dict(
                db.execute(
                    "SELECT name, rating FROM players WHERE name IN (?, ?)", (black, white)
                ).fetchall()
            )
            missing = {black, white} - set(ratings)
            if missing:
                raise KeyError(f"unknown players {sorted(missing)}: call ensure_player first")
            db.execute(
                "INSERT INTO games (black, white, result, reason, plies, step, record_path, "
                "subject, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (black, white, result, reason, plies, step, record_path, subject, time.time()),
            )
            change = self.k * (score - expected_score(ratings[black], ratings[white]))
            new_black = ratings[black] + (0.0 if black == self.anchor else change)
            new_white = ratings[white] - (0.0 if white == self.anchor else change)
            for name, rating in ((black, new_black), (white, new_white)):
                db.execute(
                    "UPDATE players SET rating = ?, games = games + 1 WHERE name = ?",
                    (rating, name),
                )
        return new_black, new_white

    def record_result(
        self, agent: str, result: GameResult, *, step: int | None = None
    ) -> tuple[float, float]:
        """Store an evaluation game given from the agent's side (see `match.play_match`)."""
        agent_black = result.agent_color == "black"
        black, white = (agent, result.opponent) if agent_black else (result.opponent, agent)
        winner = None
        if result.outcome != "draw":
            winner = 0 if agent_black == (result.outcome == "win") else 1
        return self.record_game(
            black, white, winner, result.reason, result.plies,
            step=step, record_path=result.record_path, subject=agent,
        )  # fmt: skip

    def games(self) -> list[GameRow]:
        rows = self._db.execute(
            "SELECT id, black, white, result, reason, plies, step, record_path, subject "
            "FROM games ORDER BY id"
        ).fetchall()
        return [GameRow(*row) for row in rows]

    def fit(self, prior_sd: float = 1000.0) -> dict[str, FittedRating]:
        """Maximum-likelihood ratings with 95% intervals over every recorded game."""
        triples = [
            (g.black, g.white, 0.5 if g.result == "draw" else float(g.result == "black"))
            for g in self.games()
        ]
        return fit_ratings(
            triples, anchor=self.anchor, anchor_rating=self.anchor_rating, prior_sd=prior_sd
        )


def read_players(database: str | Path) -> list[PlayerRow]:
    """Every player of the Elo database `database`, oldest first, read only: nothing is created
    or written (none when the file or its tables do not exist yet). Raises `sqlite3.Error` when
    the file cannot be read."""
    path = Path(database)
    if not path.is_file():
        return []
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'players'"
        ).fetchone()
        rows = [] if found is None else db.execute(_ALL_PLAYERS).fetchall()
    finally:
        db.close()
    return [PlayerRow(*row) for row in rows]
