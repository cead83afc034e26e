"""The ranks' side channel for failures: a `FailureBoard` of keys in the rendezvous store.

The store is a TCPStore that the launcher hosts (torchrun's agent, or `keisei train
--nproc-per-node`), so it outlives every rank. A rank that fails where the ranks do not agree on
it writes its error there before its own teardown (`World.announce_failure`); the other ranks
read it to name that rank and its error and to stop at once (`keisei.training.ranks.failures`),
and the launcher reads it to say which rank failed first, and why.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import timedelta

import torch.distributed as dist


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception, at most 500 characters (for manifests and peers)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:500]


@dataclass(frozen=True)
class AnnouncedFailure:
    """A failure a rank wrote on the `FailureBoard`."""

    rank: int
    text: str
    """Where and what: `at step 128: RuntimeError: ...`."""
    agreed: bool = False
    """Raised at a point where every rank agrees on it (all ranks stop there anyway)."""

    def message(self) -> str:
        return f"rank {self.rank} failed {self.text}"


class FailureBoard:
    """Failures announced by the ranks of one attempt of a group, in the rendezvous store.

    Each `announce` takes the next number from a counter and writes its failure under it, so
    `failures()` lists them in the order they were announced. The store is the launcher's, so the
    board outlives every rank (when the ranks were started by hand, rank 0 hosts it: once rank 0
    is gone the board reads empty). Safe to use from several threads.
    """

    def __init__(self, store: dist.Store, attempt: int) -> None:
        self._store = store
        self._prefix = f"keisei/attempt_{attempt}/failure"
        self._lock = threading.RLock()  # a signal handler may read while the main thread does
        self.stopping = False
        """This rank's own teardown has begun: nothing should interrupt it any more."""
        self._agreed: list[BaseException] = []
        self._announced: list[BaseException] = []

    @classmethod
    def connect(cls, host: str, port: int, attempt: int, timeout_s: float = 30.0) -> FailureBoard:
        """A board on the store at `host:port` (its own client connection)."""
        store = dist.TCPStore(
            host, port, is_master=False, timeout=timedelta(seconds=timeout_s),
            wait_for_workers=False,
        )  # fmt: skip
        return cls(store, attempt)

    def announce(self, rank: int, text: str, *, agreed: bool = False) -> None:
        row = json.dumps({"rank": rank, "text": text, "agreed": agreed})
        with self._lock:
            number = self._store.add(f"{self._prefix}/count", 1)
            self._store.set(f"{self._prefix}/{number}", row)

    def failures(self) -> list[AnnouncedFailure]:
        """Every failure announced so far, first first; none when the store cannot be read."""
        try:
            with self._lock:
                count = self._store.add(f"{self._prefix}/count", 0)
                keys = [f"{self._prefix}/{number}" for number in range(1, count + 1)]
                rows = [self._store.get(key) for key in keys if self._store.check([key])]
        except (RuntimeError, dist.DistError):  # the store's host is gone
            return []
        return [AnnouncedFailure(**json.loads(row)) for row in rows]

    def first_of_others(self, rank: int) -> AnnouncedFailure | None:
        """The first failure another rank announced (one not agreed, if there is one)."""
        others = [failure for failure in self.failures() if failure.rank != rank]
        unagreed = [failure for failure in others if not failure.agreed]
        return (unagreed or others or [None])[0]

    def mark_agreed(self, exc: BaseException) -> None:
        """`exc` is raised on this rank where every rank agrees to stop (see `ranks.agreement`)."""
        self._agreed.append(exc)

    def is_agreed(self, exc: BaseException) -> bool:
        return any(exc is agreed for agreed in self._agreed)

    def forget_errors(self) -> None:
        """Drop the exceptions kept to tell them apart (their tracebacks hold the trainer)."""
        self._agreed.clear()
        self._announced.clear()

    def first_announcement(self, exc: BaseException) -> bool:
        """Whether `exc` is announced for the first time (and from now on it is)."""
        if any(exc is announced for announced in self._announced):
            return False
        self._announced.append(exc)
        return True
