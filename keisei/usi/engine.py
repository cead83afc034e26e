"""The USI engine: reads GUI commands line by line and answers on an output stream.

The protocol loop runs in the calling thread and never blocks on thinking: `go` starts a search
thread that sends `info` lines and then `bestmove`; `stop` and `ponderhit` change its limits.
The network loads in the background from start-up, so `usi` is answered at once and `isready`
waits for it. Any bad command is answered with an `info string` line and changes nothing,
except that a refused `position` leaves no position to search: `go` then says so in an
`info string` line and answers `bestmove resign` rather than play a move of another position.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from keisei.log import get_logger
from keisei.search.limits import MAX_PLAYOUTS, SearchControl
from keisei.usi.options import EngineOptions
from keisei.usi.position import PositionTracker, decided_answer, searchable
from keisei.usi.protocol import (
    GoCommand,
    UsiInputError,
    format_info,
    info_string,
    parse_go,
    parse_setoption,
    value_to_cp,
)
from keisei.usi.time_control import think_time_ms

if TYPE_CHECKING:
    from keisei.search.puct import SearchResult
    from keisei.shogi import ShogiGame
    from keisei.usi.agent import Agent

_logger = get_logger("usi.engine")
EXIT_LOAD_FAILED = 3


class UsiOutput:
    """The protocol stream: whole lines, flushed at once, one writer at a time. A vanished GUI
    (broken pipe) closes it instead of raising."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.closed = False

    def send(self, line: str) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                self.closed = True


class AgentLoader:
    """Loads the agent in a background thread; `get` waits for it and re-raises its failure."""

    def __init__(self, load: Callable[[], Agent]) -> None:
        self._load = load
        self._agent: Agent | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="keisei-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._agent = self._load()
        except BaseException as exc:  # reported to the GUI by `get`
            self._error = exc

    def get(self) -> Agent:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._agent is not None
        return self._agent


@dataclass
class _Job:
    """One `go`: its search thread, limits, and whether `bestmove` must wait for stop/ponderhit."""

    go: GoCommand
    side: int
    control: SearchControl
    release: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class UsiEngineServer:
    """Serves one GUI session: `run(lines)` until `quit` or end of input; returns an exit code."""

    def __init__(
        self,
        loader: AgentLoader,
        output: UsiOutput,
        *,
        name: str = "Keisei",
        author: str = "Keisei developers",
    ) -> None:
        self._loader = loader
        self._out = output
        self._name = name
        self._author = author
        self._options = EngineOptions()
        self._position = PositionTracker()
        # Why the last `position` command was refused; None while the position is valid.
        self._refused_position: str | None = None
        self._job: _Job | None = None
        self._exit_code: int | None = None

    def run(self, lines: Iterable[str]) -> int:
        for line in lines:
            self.handle(line)
            if self._exit_code is not None or self._out.closed:
                break
        self._finish_job()
        return self._exit_code or 0

    def handle(self, line: str) -> None:
        """Carry out one command line; errors become `info string` lines."""
        words = line.split()
        if not words:
            return
        command, args = words[0], words[1:]
        handler = self._handlers().get(command)
        try:
            if handler is None:
                raise UsiInputError(f"unknown command {command!r}")
            handler(args)
        except UsiInputError as exc:
            _logger.debug("refused %r: %s", line.strip(), exc)
            self._out.send(info_string(f"error: {exc}"))
        except Exception as exc:  # never let one command take the engine down
            _logger.exception("command %r failed", line.strip())
            self._out.send(info_string(f"error: {command} failed: {exc}"))

    def _handlers(self) -> dict[str, Callable[[list[str]], None]]:
        return {
            "usi": self._usi,
            "isready": self._isready,
            "setoption": self._setoption,
            "usinewgame": self._usinewgame,
            "position": self._set_position,
            "go": self._go,
            "stop": lambda _: self._finish_job(),
            "ponderhit": self._ponderhit,
            "gameover": lambda _: self._finish_job(),
            "quit": self._quit,
        }

    # --- commands --------------------------------------------------------------------------

    def _usi(self, _: list[str]) -> None:
        self._out.send(f"id name {self._name}")
        self._out.send(f"id author {self._author}")
        for line in self._options.usi_lines():
            self._out.send(line)
        self._out.send("usiok")

    def _agent(self) -> Agent | None:
        """The loaded agent; None (and the engine exits) if it could not be loaded."""
        try:
            return self._loader.get()
        except Exception as exc:
            _logger.error("cannot load the agent: %s", exc)
            self._out.send(info_string(f"error: cannot load the agent: {exc}"))
            self._exit_code = EXIT_LOAD_FAILED
            return None

    def _isready(self, _: list[str]) -> None:
        if self._agent() is not None:
            self._out.send("readyok")

    def _setoption(self, args: list[str]) -> None:
        name, value = parse_setoption(args)
        if self._options.set(name, value) is None:
            _logger.debug("option %s ignored", name)

    def _usinewgame(self, _: list[str]) -> None:
        self._finish_job()
        self._position.set(["startpos"])
        self._refused_position = None

    def _set_position(self, args: list[str]) -> None:
        try:
            self._position.set(args)
        except Exception as exc:
            self._refused_position = str(exc)
            raise
        self._refused_position = None

    def _quit(self, _: list[str]) -> None:
        self._finish_job()
        self._exit_code = 0

    def _ponderhit(self, _: list[str]) -> None:
        job = self._job
        if job is None or not job.go.ponder:
            return
        self._apply_limits(job, job.go, pondering=False)
        job.release.set()

    def _go(self, args: list[str]) -> None:
        previous = self._job
        if previous is not None and previous.thread is not None:
            if not previous.release.is_set():
                raise UsiInputError("go: still thinking (infinite or ponder); send stop first")
            # A limited search ends by itself: let it finish (its `bestmove` may be out already
            # while the thread is still returning).
            previous.thread.join()
        self._job = None
        go = parse_go(args)
        if go.mate:
            self._out.send("checkmate notimplemented")
            return
        agent = self._agent()
        if agent is None:
            return
        self._configure(agent)
        game = self._position.game
        job = _Job(go, game.turn, SearchControl())
        self._apply_limits(job, go, pondering=go.ponder)
        if not (go.infinite or go.ponder):
            job.release.set()
        answer = self._refused_answer() or decided_answer(game)
        # In the search, a position where the side to move can declare is that side's win.
        to_search = None if answer else searchable(game, declaration=True)
        job.thread = threading.Thread(
            target=self._think, args=(agent, job, to_search, answer), name="keisei-go", daemon=True
        )
        self._job = job
        job.thread.start()

    def _refused_answer(self) -> str | None:
        """`resign` (said why) when the last `position` was refused: the GUI's position is
        unknown, and a move for the previous one could be illegal there."""
        if self._refused_position is None:
            return None
        self._out.send(
            info_string(f"error: go: no position to search ({self._refused_position}); resigning")
        )
        return "resign"

    # --- thinking --------------------------------------------------------------------------

    def _configure(self, agent: Agent) -> None:
        import torch

        options = self._options
        agent.settings.playouts = int(options["Playouts"])
        agent.settings.batch_size = int(options["BatchSize"])
        agent.settings.c_puct = float(options["CPuct"])
        if torch.get_num_threads() != options["Threads"]:
            torch.set_num_threads(int(options["Threads"]))

    def _apply_limits(self, job: _Job, go: GoCommand, *, pondering: bool) -> None:
        """Playouts and deadline for `go` (searching on while pondering or infinite)."""
        control = job.control
        playouts = int(self._options["Playouts"])
        if playouts > 0 and (go.infinite or pondering):
            control.deadline = None
            control.max_playouts = MAX_PLAYOUTS
            return
        if playouts > 0 and go.nodes is not None:
            playouts = max(min(playouts, go.nodes), 1)
        budget_ms = think_time_ms(go, job.side, int(self._options["MoveOverhead"]))
        control.deadline = None if budget_ms is None else time.monotonic() + budget_ms / 1000
        control.max_playouts = playouts

    def _think(self, agent: Agent, job: _Job, game: ShogiGame | None, answer: str | None) -> None:
        best = answer or "resign"  # if the search itself fails, the GUI still gets an answer
        try:
            if game is not None:
                result = agent.think(game, job.control, self._report)
                self._report(result)
                best = result.usi
        except Exception as exc:
            _logger.exception("search failed")
            self._out.send(info_string(f"error: search failed: {exc}"))
        job.release.wait()
        self._out.send(f"bestmove {best}")

    def _report(self, result: SearchResult) -> None:
        self._out.send(
            format_info(
                depth=len(result.pv),
                seldepth=result.seldepth,
                nodes=max(result.playouts, 1),
                time_ms=int(result.seconds * 1000),
                score_cp=value_to_cp(result.value),
                mate=result.mate,
                pv=result.pv,
            )
        )

    def _finish_job(self) -> None:
        """Stop the running search (if any); its `bestmove` is sent before this returns."""
        job = self._job
        if job is None:
            return
        job.control.stop.set()
        job.release.set()
        if job.thread is not None:
            job.thread.join()
        self._job = None
