"""An external USI engine as a player (Fairy-Stockfish, YaneuraOu, Keisei's own `keisei usi`),
through `keisei.evaluation.players.usi_client`."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from keisei.evaluation.players.base import PlayerFailure
from keisei.evaluation.players.usi_client import UsiEngine, UsiError, UsiTimeoutError
from keisei.log import get_logger
from keisei.shogi import ShogiGame

_log = get_logger("evaluation.players")


class UsiPlayer:
    """An external USI engine in a subprocess, with time limits. Hangs and crashes lose games.

    One engine process serves all the games of a match: each game begins with `usinewgame`. It is
    replaced only after it crashed or hung (it is killed then), and an engine found dead between
    games is restarted before the next game rather than losing it. `timeout_s` bounds every wait
    for the engine: the start-up handshake (`usiok`, `readyok`), each new game, and each move
    beyond its byoyomi. A timeout loses the game as `engine_timeout`, a crash as `engine_crash`.

    Its default name says everything that sets its strength (options, byoyomi, nodes), so the Elo
    registry keeps differently limited engines apart. It has no depth limit.
    """

    kind = "usi"
    step = None
    DEFAULT_BYOYOMI_MS = 1000
    """The byoyomi sent when neither byoyomi nor nodes is given (as `UsiEngine.best_move`)."""
    QUIT_GRACE_S = 5.0
    """At most this long (and never beyond `timeout_s`) for the engine to obey `quit`."""

    def __init__(
        self,
        command: str,
        *,
        options: Mapping[str, str] | None = None,
        byoyomi_ms: int | None = 100,
        nodes: int | None = None,
        timeout_s: float = 30.0,
        name: str | None = None,
    ) -> None:
        if byoyomi_ms is None and nodes is None:
            byoyomi_ms = self.DEFAULT_BYOYOMI_MS
        if not timeout_s > 0:
            raise ValueError(f"USI engine {command!r}: timeout must be positive, got {timeout_s}")
        self.command = command
        self.path = command
        self.byoyomi_ms, self.nodes, self.timeout_s = byoyomi_ms, nodes, timeout_s
        self._options = dict(options or {})
        self._engine: UsiEngine | None = None
        self.name = name or f"usi:{Path(shlex.split(command)[0]).name}{self._settings()}"

    def _settings(self) -> str:
        """` k=v` for each option (sorted), then the limits: ` byoyomi=<ms>ms`, ` nodes=<n>`."""
        words = [f"{key}={value}" for key, value in sorted(self._options.items())]
        if self.byoyomi_ms is not None:
            words.append(f"byoyomi={self.byoyomi_ms}ms")
        if self.nodes is not None:
            words.append(f"nodes={self.nodes}")
        return "".join(f" {word}" for word in words)

    def _ensure_engine(self) -> UsiEngine:
        if self._engine is None:
            engine = UsiEngine(
                self.command,
                options=self._options,
                name=self.name,
                startup_timeout_s=self.timeout_s,
            )
            try:
                engine.start()
            except UsiError as exc:
                engine.quit(timeout_s=self._quit_grace_s)
                raise PlayerFailure(
                    self._failure_reason(exc), f"{self.name} failed to start: {exc}"
                ) from exc
            self._engine = engine
        return self._engine

    def new_game(self) -> None:
        engine = self._engine
        if engine is not None and not engine.running:
            self._restart_after(f"exited between games (exit code {engine.returncode})")
            engine = None
        if engine is not None:
            try:
                engine.new_game(self.timeout_s)
                return
            except UsiTimeoutError as exc:  # a hang: killed, and this game is lost
                self._restart_after(exc)
                raise PlayerFailure("engine_timeout", f"{self.name}: {exc}") from exc
            except UsiError as exc:  # died before this game began: a fresh one plays it
                self._restart_after(exc)
        engine = self._ensure_engine()
        try:
            engine.new_game(self.timeout_s)
        except UsiError as exc:
            self._restart_after(exc)
            raise PlayerFailure(self._failure_reason(exc), f"{self.name}: {exc}") from exc

    def choose(self, game: ShogiGame) -> str:
        engine = self._ensure_engine()
        try:
            return engine.best_move(
                game.usi_position(),
                byoyomi_ms=self.byoyomi_ms,
                nodes=self.nodes,
                movetime_timeout_s=self.timeout_s,
            )
        except UsiError as exc:
            self._restart_after(exc)
            raise PlayerFailure(self._failure_reason(exc), f"{self.name}: {exc}") from exc

    @staticmethod
    def _failure_reason(exc: UsiError) -> str:
        """The end reason of a game lost to an engine failure."""
        return "engine_timeout" if isinstance(exc, UsiTimeoutError) else "engine_crash"

    @property
    def _quit_grace_s(self) -> float:
        return min(self.timeout_s, self.QUIT_GRACE_S)

    def _restart_after(self, why: object) -> None:
        _log.warning("%s failed (%s); a fresh process plays its next game", self.name, why)
        if self._engine is not None:
            self._engine.quit(timeout_s=self._quit_grace_s)
        self._engine = None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.quit(timeout_s=self._quit_grace_s)
            self._engine = None
