"""The Elo registry: every evaluation game and every player of a run, in SQLite.

One database file per run (`elo.sqlite` in the run directory), in WAL mode so the trainer and a
background evaluation process can write at the same time; each write is one `BEGIN IMMEDIATE`
transaction and waits (busy timeout) rather than fails while another process holds the lock.

Ratings here are incremental per-game Elo (factor `k`) for the live display, with the anchor
player (the random player by default) fixed at `anchor_rating`. `keisei ratings` fits
maximum-likelihood ratings over all games instead (see `bradley_terry.py`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from keisei.evaluation.bradley_terry import FittedRating, expected_score, fit_ratings
from keisei.evaluation.result import GameResult

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


class EloRegistry:
    """Players, games and incremental Elo ratings of one run."""

    def __init__(
        self,
        path: str | Path,
        *,
        k: float = 32.0,
        anchor: str = "random",
        anchor_rating: float = 0.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.k = k
        self.anchor = anchor
        self.anchor_rating = anchor_rating
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        with self._write():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(games)")}
            if "subject" not in columns:  # databases written before the column existed
                self._db.execute("ALTER TABLE games ADD COLUMN subject TEXT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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
        rows = self._db.execute(
            "SELECT name, kind, path, step, rating, games FROM players ORDER BY created, name"
        ).fetchall()
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
