"""Failing fast across ranks: no rank waits on one that failed.

The ranks agree on some failures at the epoch's agreement points (`agreement`: self-play, the
callbacks). Anything else (an error inside the PPO update, while the others wait in DDP's
gradient all-reduce; in the metrics, the display, the end of training) is *announced*: the
failing rank writes it on the `FailureBoard` (the rendezvous store) first thing on its one
teardown path (`World.announce_failure`), before it writes anything else or closes anything.
Then, on every other rank:

1. a watcher thread reads the board every `POLL_S`; when another rank announced a failure, it
   logs it and sends this process SIGTERM;
2. SIGTERM (the watcher's, or the launcher's when it ends the group) raises `RankStopped` in the
   main thread, naming that rank and its error: training stops through the one teardown path
   (rank 0 still writes its final checkpoint). A rank already in its teardown finishes it;
3. a collective waiting for the failed rank returns once that rank's connections close (it has
   nothing to wait for in its teardown); the error names it (`World.lost_rank_reported`);
4. a rank that is still not stopping `FORCE_EXIT_S` after it saw the failure is stuck on a rank
   that does not answer: the watcher logs why and ends the process (exit status 1).

The launchers end the group when a rank exits with a failure: torchrun's agent and
`keisei train --nproc-per-node` (`launch`) send the others SIGTERM at once, SIGKILL later.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType, TracebackType

from keisei.log import get_logger
from keisei.training.distributed import World
from keisei.training.failure_board import AnnouncedFailure, FailureBoard

POLL_S = 0.25
"""How often a rank reads the board."""
FORCE_EXIT_S = 10.0
"""How long a rank that saw another's failure may take to start stopping before it is ended."""


class RankStopped(KeyboardInterrupt):
    """This rank was stopped from outside: another rank failed, or the launcher ended the group
    (SIGTERM). A KeyboardInterrupt, as a second Ctrl-C is, so that no `except Exception` on the
    way (a callback's failure policy, the self-play agreement) keeps it; `keisei train` reports
    it as a failure (exit status 1)."""

    def __init__(self, message: str, rank: int | None = None) -> None:
        super().__init__(message)
        self.rank = rank
        """The rank that failed, when known."""


class FailFast:
    """While entered (on a rank of several, in the main thread): SIGTERM stops this rank at
    once, and another rank's announced failure sends it SIGTERM (see the module docstring)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._logger = get_logger("distributed")
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: signal.Handlers | object = None
        self._seen: AnnouncedFailure | None = None

    @property
    def _board(self) -> FailureBoard:
        assert self.world.board is not None
        return self.world.board

    def __enter__(self) -> FailFast:
        if self.world.board is None or threading.current_thread() is not threading.main_thread():
            return self
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self._thread = threading.Thread(target=self._watch, name="keisei-fail-fast", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._thread is None:
            return
        self._done.set()
        self._thread.join()
        self._thread = None
        signal.signal(signal.SIGTERM, self._previous)  # type: ignore[arg-type]

    # ------------------------------------------------------------ main thread

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        board = self._board
        if board.stopping:
            self._logger.warning(
                "SIGTERM: this rank is already stopping; finishing its teardown first"
            )
            return
        board.stopping = True
        failure = self._seen or board.first_of_others(self.world.rank)
        if failure is not None:
            raise RankStopped(failure.message(), failure.rank)
        raise RankStopped("stopped by SIGTERM (the launcher ended the group)")

    # --------------------------------------------------------- watcher thread

    def _watch(self) -> None:
        board, rank = self._board, self.world.rank
        while not self._done.wait(POLL_S):
            if board.stopping:
                return
            failure = board.first_of_others(rank)
            if failure is None or failure.agreed:
                continue  # an agreed failure stops every rank at the same point anyway
            self._seen = failure
            self._logger.error("%s; stopping rank %d too", failure.message(), rank)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
            self._end_if_stuck(failure)
            return

    def _end_if_stuck(self, failure: AnnouncedFailure) -> None:
        deadline = time.monotonic() + FORCE_EXIT_S
        while not self._done.wait(POLL_S):
            if self._board.stopping:
                return
            if time.monotonic() >= deadline:
                self._logger.error(
                    "rank %d is still not stopping %g s after %s; it must be waiting for a "
                    "rank that no longer answers: ending it now (exit status 1)",
                    self.world.rank,
                    FORCE_EXIT_S,
                    failure.message(),
                )
                for handler in logging.getLogger("keisei").handlers:
                    handler.flush()
                os._exit(1)
