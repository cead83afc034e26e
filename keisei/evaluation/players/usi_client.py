"""A client for any USI engine run as a subprocess (Keisei's own `keisei usi`, Fairy-Stockfish,
YaneuraOu, ...), for evaluation matches and tests.

Reading never blocks forever: a reader thread puts the engine's stdout lines on a queue and every
wait has a deadline. The engine's stderr is drained by another thread (its last lines are kept
for error messages), so a chatty engine cannot fill the pipe and deadlock. Errors name the engine
and what happened: `UsiTimeoutError` (no answer in time; the engine is killed), `UsiCrashedError`
(the process exited or the pipe broke), `UsiError` for everything else.

Options: an option the engine did not advertise after `usi` is refused with a `UsiError` naming
it, since a misspelt option would otherwise be silently ignored by most engines. Names match
case-insensitively (the engine's own spelling is sent). Two cases pass through unchecked: `USI_*`
options (`USI_Hash`, `USI_Ponder`), which GUIs send without engines listing them, and engines that
advertise no options at all.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from keisei.log import get_logger

_logger = get_logger("usi.client")
_EOF: Final = object()
_BESTMOVE: Final = re.compile(r"(?:[1-9][a-i][1-9][a-i]\+?|[PLNSGBR]\*[1-9][a-i]|resign|win)")
_OPTION_NAME: Final = re.compile(r"^option\s+name\s+(.+?)\s+type\s")
STOP_GRACE_S: Final[float] = 1.0
"""How long a timed-out engine gets to answer `stop` before it is killed."""
GAME_RESULTS: Final = ("win", "lose", "draw")
STDERR_TAIL_LINES: Final = 20


class UsiError(Exception):
    """A USI engine misbehaved or could not be used; the message names the engine."""


class UsiTimeoutError(UsiError):
    """The engine did not answer in time; it has been killed."""


class UsiCrashedError(UsiError):
    """The engine process exited or its pipe broke."""


class UsiEngine:
    """One engine subprocess speaking USI. Use as a context manager, or `start()` ... `quit()`.

    `command` is an argument list or a shell-like string (split with `shlex`, never run by a
    shell). `options` are sent with `setoption` after `usi`. `name` labels the engine in messages
    (default: the executable's file name). `startup_timeout_s` bounds each wait of the handshake
    (`usiok`, `readyok`) and of `new_game`; `best_move` has its own limit.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        options: Mapping[str, str] | None = None,
        name: str | None = None,
        startup_timeout_s: float = 30.0,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.command:
            raise ValueError("empty USI engine command")
        self.options = dict(options or {})
        self.name = name or Path(self.command[0]).name
        self.startup_timeout_s = startup_timeout_s
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.engine_name: str | None = None
        self.engine_author: str | None = None
        self.advertised_options: list[str] = []
        self.last_info: str | None = None
        """The last `info` line before the latest `bestmove` (score, pv...)."""
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[object] = queue.Queue()
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._threads: list[threading.Thread] = []
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """The engine's exit status once it has exited (None while it runs)."""
        return None if self._process is None else self._process.poll()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Spawn the engine; `usi` → `usiok`; `setoption` for each option; `isready` → `readyok`."""
        if self._process is not None:
            raise UsiError(f"engine {self.name}: already started")
        try:
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                cwd=self.cwd,
                env=self.env,
            )
        except OSError as exc:
            raise UsiError(f"engine {self.name}: cannot start {self.command!r}: {exc}") from exc
        self._spawn_reader(self._process.stdout, self._read_stdout, "stdout")
        self._spawn_reader(self._process.stderr, self._read_stderr, "stderr")
        try:
            self.send_line("usi")
            for line in self.read_until("usiok", self.startup_timeout_s, "usi"):
                self._note_identity(line)
            for option, value in self.options.items():
                self.send_line(f"setoption name {self._option_name(option)} value {value}")
            self._ready(self.startup_timeout_s, "isready")
        except UsiError:
            self._kill()
            raise
        _logger.debug("engine %s started (pid %s): %s", self.name, self.pid, self.engine_name)

    def new_game(self, timeout_s: float | None = None) -> None:
        """`usinewgame`, then `isready` → `readyok` within `timeout_s` (default: the start-up
        timeout); `UsiTimeoutError` (the engine is killed) if it does not come."""
        self.send_line("usinewgame")
        self._ready(self.startup_timeout_s if timeout_s is None else timeout_s, "usinewgame")

    def best_move(
        self,
        position: str,
        *,
        byoyomi_ms: int | None = None,
        nodes: int | None = None,
        movetime_timeout_s: float = 30.0,
    ) -> str:
        """The engine's `bestmove` (a USI move, `resign` or `win`) for `position`
        (`startpos [moves ...]` or `sfen <sfen> [moves ...]`; a leading `position` is dropped).

        Sends `go btime 0 wtime 0 byoyomi <ms>` and/or `nodes <n>` (neither: byoyomi 1000). If no
        answer comes within `movetime_timeout_s`, sends `stop`, waits briefly, kills the engine
        and raises `UsiTimeoutError`.
        """
        words = position.split()
        if words and words[0] == "position":
            words = words[1:]
        if not words or words[0] not in ("startpos", "sfen"):
            raise ValueError(f"engine {self.name}: not a USI position: {position!r}")
        go = ["go"]
        if byoyomi_ms is None and nodes is None:
            byoyomi_ms = 1000
        if byoyomi_ms is not None:
            go += ["btime", "0", "wtime", "0", "byoyomi", str(int(byoyomi_ms))]
        if nodes is not None:
            go += ["nodes", str(int(nodes))]
        self.send_line("position " + " ".join(words))
        self.send_line(" ".join(go))
        lines = self.read_until("bestmove", movetime_timeout_s, "go")
        infos = [line for line in lines if line.startswith("info ")]
        self.last_info = infos[-1] if infos else None
        parts = lines[-1].split()
        if len(parts) < 2 or not _BESTMOVE.fullmatch(parts[1]):
            _logger.warning("engine %s: malformed answer %r", self.name, lines[-1])
            raise UsiError(f"engine {self.name}: malformed bestmove line {lines[-1]!r}")
        return parts[1]

    def game_over(self, result: str) -> None:
        """`gameover win|lose|draw` (the engine's own result)."""
        if result not in GAME_RESULTS:
            raise ValueError(f"game result must be one of {GAME_RESULTS}, not {result!r}")
        self.send_line(f"gameover {result}")

    def quit(self, timeout_s: float = 5.0) -> None:
        """`quit`, then terminate or kill if the engine lingers. Safe to call more than once."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            try:
                self.send_line("quit")
            except UsiCrashedError:
                pass
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _logger.warning("engine %s ignored quit; terminating it", self.name)
                self._kill()
        self._cleanup()

    def __enter__(self) -> UsiEngine:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.quit()

    # --- low-level protocol ------------------------------------------------------------------

    def send_line(self, line: str) -> None:
        """Send one command line; `UsiCrashedError` if the engine is gone."""
        process = self._process
        if process is None or process.stdin is None:
            raise UsiError(f"engine {self.name}: not started")
        if process.poll() is not None:
            raise self._crashed(f"exited before {line.split()[0]!r} could be sent")
        try:
            process.stdin.write(line + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise self._crashed(f"pipe broke while sending {line.split()[0]!r}: {exc}") from exc

    def read_until(self, token: str, timeout_s: float, waiting_for: str) -> list[str]:
        """Lines up to and including the first whose first word is `token`. On timeout sends
        `stop` (for `go`), kills the engine and raises `UsiTimeoutError`."""
        deadline = time.monotonic() + timeout_s
        lines: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self._lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise self._timed_out(token, timeout_s, waiting_for) from None
            if item is _EOF:
                raise self._crashed(f"exited while waiting for {token!r} after {waiting_for!r}")
            line = str(item)
            lines.append(line)
            if line.split(maxsplit=1)[:1] == [token]:
                return lines

    def _ready(self, timeout_s: float, after: str) -> None:
        self.send_line("isready")
        self.read_until("readyok", timeout_s, after)

    def _option_name(self, option: str) -> str:
        if option.upper().startswith("USI_") or not self.advertised_options:
            return option
        for advertised in self.advertised_options:
            if advertised.lower() == option.lower():
                return advertised
        raise UsiError(
            f"engine {self.name}: unknown option {option!r}; it advertises: "
            + ", ".join(self.advertised_options)
        )

    def _note_identity(self, line: str) -> None:
        if line.startswith("id name "):
            self.engine_name = line[len("id name ") :].strip()
        elif line.startswith("id author "):
            self.engine_author = line[len("id author ") :].strip()
        else:
            match = _OPTION_NAME.match(line)
            if match:
                self.advertised_options.append(match.group(1))

    # --- failure handling ----------------------------------------------------------------------

    def _timed_out(self, token: str, timeout_s: float, waiting_for: str) -> UsiTimeoutError:
        if waiting_for == "go" and self.running:
            try:
                self.send_line("stop")
                self.read_until_quietly("bestmove", STOP_GRACE_S)
            except UsiError:
                pass
        self._kill()
        message = (
            f"engine {self.name}: no {token!r} within {timeout_s:g} s after {waiting_for!r}; killed"
        )
        if self._stderr_tail:
            message += "; stderr: " + " | ".join(self._stderr_tail)
        _logger.error("%s", message)
        return UsiTimeoutError(message)

    def read_until_quietly(self, token: str, timeout_s: float) -> bool:
        """Drain lines until `token` or the timeout, without raising; True if `token` came."""
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._lines.get(timeout=remaining)
            except queue.Empty:
                return False
            if item is _EOF:
                return False
            if str(item).split(maxsplit=1)[:1] == [token]:
                return True
        return False

    def _crashed(self, what: str) -> UsiCrashedError:
        process = self._process
        code = None
        if process is not None:
            try:
                code = process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
        for thread in self._threads:
            if thread.name.endswith("stderr"):
                thread.join(timeout=1.0)
        tail = " | ".join(self._stderr_tail)
        message = f"engine {self.name}: {what} (exit code {code})"
        if tail:
            message += f"; stderr: {tail}"
        _logger.error("%s", message)
        return UsiCrashedError(message)

    def _kill(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        """Close the pipes of an exited engine. A reader still blocked (a grandchild holding the
        pipe open) keeps its stream: it is a daemon thread, and closing under it could hang."""
        process = self._process
        if process is None or self._closed:
            return
        self._closed = True
        if process.stdin is not None:
            try:
                process.stdin.close()
            except (OSError, ValueError):
                pass
        for thread, stream in zip(self._threads, (process.stdout, process.stderr), strict=False):
            thread.join(timeout=1.0)
            if not thread.is_alive() and stream is not None:
                stream.close()

    # --- reader threads ------------------------------------------------------------------------

    def _spawn_reader(self, stream: object, target: object, what: str) -> None:
        thread = threading.Thread(
            target=target, args=(stream,), name=f"usi-{self.name}-{what}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _read_stdout(self, stream: object) -> None:
        try:
            for line in stream:  # type: ignore[attr-defined]
                self._lines.put(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        finally:
            self._lines.put(_EOF)

    def _read_stderr(self, stream: object) -> None:
        try:
            for line in stream:  # type: ignore[attr-defined]
                text = line.rstrip("\r\n")
                if text:
                    self._stderr_tail.append(text)
                    _logger.debug("engine %s stderr: %s", self.name, text)
        except (OSError, ValueError):
            pass
