"""Who plays evaluation games: random, greedy, a Keisei network, or an external USI engine.

A player answers `choose(game)` with a USI move, or `resign`. A player that cannot answer (an
engine that hangs or crashes) raises `PlayerFailure` with the end reason to record; the match
counts the game as lost by that player and goes on.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import cshogi
import numpy as np
import torch

from keisei.config import parse_opponent_spec
from keisei.evaluation.search.batch_evaluator import BatchEvaluator
from keisei.evaluation.search.limits import SearchControl
from keisei.evaluation.search.puct import PuctSearch
from keisei.evaluation.usi_client import UsiEngine, UsiError, UsiTimeoutError
from keisei.log import get_logger
from keisei.model import ActorCritic, Architecture, masked_logits
from keisei.shogi import ShogiGame, capture_value, mate_in_one

RESIGN = "resign"
_log = get_logger("evaluation.players")


class PlayerFailure(Exception):
    """The player could not produce a move; `reason` is recorded as the game's end reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Player(Protocol):
    name: str
    """Identity in the Elo registry (e.g. `random`, `first/step_000102400`)."""
    kind: str
    """`random`, `greedy`, `agent`, `checkpoint` or `usi`."""
    path: str | None
    step: int | None

    def new_game(self) -> None: ...

    def choose(self, game: ShogiGame) -> str: ...

    def close(self) -> None: ...


def _usi(game: ShogiGame, label: int) -> str:
    return str(cshogi.move_to_usi(game.move_for_label(label)))


class RandomPlayer:
    """Uniform over legal moves: the fixed reference of the rating scale."""

    kind = "random"
    path = None
    step = None

    def __init__(self, seed: int = 0, name: str = "random") -> None:
        self.name = name
        self._rng = np.random.default_rng(seed)

    def new_game(self) -> None:
        pass

    def choose(self, game: ShogiGame) -> str:
        labels = game.legal_labels()
        return _usi(game, int(labels[self._rng.integers(len(labels))]))

    def close(self) -> None:
        pass


class GreedyPlayer:
    """Mates in one if it can, else takes the most valuable piece it can, else plays randomly."""

    kind = "greedy"
    path = None
    step = None

    def __init__(self, seed: int = 0, name: str = "greedy") -> None:
        self.name = name
        self._rng = np.random.default_rng(seed)

    def new_game(self) -> None:
        pass

    def choose(self, game: ShogiGame) -> str:
        mate = mate_in_one(game)
        if mate is not None:
            return _usi(game, mate)
        moves = game.legal_moves()
        values = np.array([capture_value(move) for move in moves])
        best = np.flatnonzero(values == values.max()) if values.max() > 0 else np.arange(len(moves))
        return str(cshogi.move_to_usi(moves[int(best[self._rng.integers(len(best))])]))

    def close(self) -> None:
        pass


class NeuralPlayer:
    """A Keisei network: the most probable legal move (`greedy`), or a sample from the policy.

    With `playouts` > 0 it searches instead (PUCT, `keisei.evaluation.search`) and plays the
    most visited move; the searches of all the games it is asked about at once run in lockstep,
    their leaves evaluated together, `search_batch` leaves per game per forward pass. Searching is
    deterministic (`greedy` and `seed` then play no part), and the name gets `+puct<N>` so that
    the Elo registry rates the network with and without search as different players.
    """

    MAX_SEARCH_ROWS = 256
    """At most this many positions in one forward pass of the search (more take several)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        name: str,
        kind: str = "agent",
        greedy: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
        path: str | None = None,
        step: int | None = None,
        playouts: int = 0,
        search_batch: int = 8,
    ) -> None:
        if playouts < 0:
            raise ValueError(f"playouts must be >= 0, got {playouts}")
        if search_batch < 1:
            raise ValueError(f"search_batch must be >= 1, got {search_batch}")
        self.name = name + search_suffix(playouts)
        self.kind, self.path, self.step = kind, path, step
        self.model = model
        self.greedy = greedy
        self.playouts = playouts
        self.search_batch = search_batch
        self.device = torch.device(device)
        self._generator = torch.Generator(device="cpu").manual_seed(seed)
        self._obs = np.zeros((1, *model_input_shape(model)), dtype=np.float32)
        self._search: PuctSearch | None = None

    def new_game(self) -> None:
        pass

    def choose(self, game: ShogiGame) -> str:
        return self.choose_many([game])[0]

    def choose_many(self, games: Sequence[ShogiGame]) -> list[str]:
        """A move for each of `games` (each with this player to move): one batched forward pass,
        or with playouts the batched search."""
        if self.playouts > 0:
            return self._search_many(games)
        if len(self._obs) < len(games):
            self._obs = np.zeros((len(games), *self._obs.shape[1:]), dtype=np.float32)
        obs = self._obs[: len(games)]
        for row, game in zip(obs, games, strict=True):
            game.observation(out=row)
        masks = torch.from_numpy(np.stack([game.legal_mask() for game in games])).to(self.device)
        with torch.inference_mode():
            logits, _ = self.model(torch.from_numpy(obs).to(self.device))
            logits = masked_logits(logits.float(), masks).cpu()
        if self.greedy:
            labels = torch.argmax(logits, dim=-1)
        else:
            probs = torch.softmax(logits, dim=-1)
            labels = torch.multinomial(probs, 1, generator=self._generator).squeeze(-1)
        return [_usi(game, int(label)) for game, label in zip(games, labels, strict=True)]

    def _search_many(self, games: Sequence[ShogiGame]) -> list[str]:
        """The most visited move of each game's search (the games are restored afterwards)."""
        rows = min(len(games) * self.search_batch, max(self.MAX_SEARCH_ROWS, self.search_batch))
        search = self._search
        if search is None or search.evaluator.capacity < rows:
            evaluator = BatchEvaluator(self.model, rows, self.device)
            search = self._search = PuctSearch(evaluator, leaf_batch=self.search_batch)
        results = search.run_many(games, SearchControl(max_playouts=self.playouts))
        return [result.usi for result in results]

    def close(self) -> None:
        pass


def search_suffix(playouts: int) -> str:
    """`+puct<N>` for a player that searches N playouts a move; nothing for the raw policy."""
    return f"+puct{playouts}" if playouts > 0 else ""


def batchable(player: Player) -> bool:
    """Whether the player can answer for several running games at once (no external engine)."""
    return not isinstance(player, UsiPlayer)


def choose_many(player: Player, games: Sequence[ShogiGame]) -> list[str | PlayerFailure]:
    """The player's answer for each game: a batched pass for networks, one by one otherwise.

    A `PlayerFailure` is returned in place of that game's move, not raised.
    """
    if isinstance(player, NeuralPlayer):
        return list(player.choose_many(games))
    answers: list[str | PlayerFailure] = []
    for game in games:
        try:
            answers.append(player.choose(game))
        except PlayerFailure as exc:
            answers.append(exc)
    return answers


def model_input_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    architecture = getattr(model, "architecture", None)
    planes = architecture.input_planes if architecture is not None else 119
    return (planes, 9, 9)


def load_checkpoint_player(
    path: str | Path,
    *,
    greedy: bool = True,
    seed: int = 0,
    device: str = "cpu",
    kind: str = "checkpoint",
    playouts: int = 0,
) -> NeuralPlayer:
    """A saved Keisei model as a player, loaded safely (checksums verified, no pickle).

    `kind` is `checkpoint` for an opponent, `agent` for the training run's checkpoint under
    evaluation; either way its registry name is the checkpoint's (`<run>/<checkpoint>`), with
    `+puct<N>` after it when it searches `playouts` > 0 playouts a move."""
    from keisei.checkpoint import load_model_weights, read_architecture, resolve_checkpoint
    from keisei.checkpoint.layout import step_of

    checkpoint = resolve_checkpoint(path)
    model = ActorCritic(Architecture.from_dict(read_architecture(checkpoint)))
    model.load_state_dict(load_model_weights(checkpoint))
    model.to(device).eval()
    return NeuralPlayer(
        model,
        name=checkpoint_player_name(checkpoint),
        kind=kind,
        greedy=greedy,
        seed=seed,
        device=device,
        path=str(checkpoint.resolve()),
        step=step_of(checkpoint.name),
        playouts=playouts,
    )


def checkpoint_player_name(checkpoint: Path) -> str:
    """The registry name of a checkpoint played by its raw policy: `<run>/<checkpoint>`."""
    return f"{checkpoint.parent.parent.name}/{checkpoint.name}"


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


def make_opponent(
    spec: str,
    *,
    seed: int = 0,
    device: str = "cpu",
    options: Mapping[str, str] | None = None,
    usi_byoyomi_ms: int | None = 100,
    usi_nodes: int | None = None,
    usi_timeout_s: float = 30.0,
) -> Player:
    """Build an opponent from `random`, `greedy`, `checkpoint:PATH` or `usi:COMMAND` (the one
    spec grammar, `keisei.config.parse_opponent_spec`; ValueError for anything else)."""
    kind, argument = parse_opponent_spec(spec)
    if kind == "random":
        return RandomPlayer(seed)
    if kind == "greedy":
        return GreedyPlayer(seed)
    if kind == "checkpoint":
        return load_checkpoint_player(argument, seed=seed, device=device)
    return UsiPlayer(
        argument,
        options=options,
        byoyomi_ms=usi_byoyomi_ms,
        nodes=usi_nodes,
        timeout_s=usi_timeout_s,
    )
