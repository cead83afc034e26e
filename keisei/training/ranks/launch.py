"""`keisei train --nproc-per-node N`: start N local ranks of `keisei train`, watch them, and
restart the group from its latest checkpoint when a rank dies (up to `--max-restarts` times).

The ranks meet through torch.distributed's env:// rendezvous at a TCPStore that this launcher
hosts on 127.0.0.1, as torchrun's agent does (so the store, and the failures the ranks announce
on it, outlive every rank); each gets the variables torchrun would give it (`RANK`,
`WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`,
`TORCHELASTIC_RESTART_COUNT`, `TORCHELASTIC_MAX_RESTARTS`, `TORCHELASTIC_USE_AGENT_STORE`), so
a rank behaves the same under this launcher and under torchrun. A restarted rank sees
`TORCHELASTIC_RESTART_COUNT` > 0 and resumes the run's latest checkpoint.

When a rank exits with a failure, the others are sent SIGTERM at once (each stops through its
teardown, rank 0 writing its final checkpoint; `ranks.failures`) and SIGKILL `GRACE_S` later if
they are still there; the launcher then names the rank that failed first and its error, as that
rank announced it.

The ranks run in their own session, so Ctrl-C reaches them once, through this launcher, which
passes it on to every rank: the first press stops them all at the end of the same epoch, the
second at once. A rank that stops with exit status 130 was stopped that way and is not restarted.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import torch.distributed as dist

from keisei.log import get_logger
from keisei.training.failure_board import FailureBoard

STOPPED_BY_USER = 130
GRACE_S = 20.0
"""How long the other ranks get to stop after SIGTERM (one failed), before SIGKILL."""

_logger = get_logger("launch")


def free_port() -> int:
    """A port free on 127.0.0.1 now (for ranks started by hand, in tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class LocalGroup:
    """N ranks of one `keisei train` command on this machine."""

    def __init__(self, train_args: Sequence[str], nproc: int, restart: int, max_restarts: int):
        self.store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
        self.board = FailureBoard(self.store, restart)
        port = self.store.port
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // nproc))
        self.ranks: list[subprocess.Popen[bytes]] = []
        for rank in range(nproc):
            env = {
                **os.environ,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(nproc),
                "LOCAL_WORLD_SIZE": str(nproc),
                "GROUP_RANK": "0",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "TORCHELASTIC_RESTART_COUNT": str(restart),
                "TORCHELASTIC_MAX_RESTARTS": str(max_restarts),
                "TORCHELASTIC_USE_AGENT_STORE": "True",  # the store above, not one on rank 0
                "OMP_NUM_THREADS": threads,
            }
            self.ranks.append(
                subprocess.Popen(
                    [sys.executable, "-m", "keisei", "train", *train_args],
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            )

    def signal_all(self, signum: int) -> None:
        for process in self.ranks:
            if process.poll() is None:
                try:
                    process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def wait(self) -> tuple[int, list[int]]:
        """Wait until every rank has exited or one has failed; (the first failed rank or -1,
        the exit codes so far)."""
        while True:
            codes = [process.poll() for process in self.ranks]
            for rank, code in enumerate(codes):
                if code is not None and code not in (0, STOPPED_BY_USER):
                    return rank, [c if c is not None else 0 for c in codes]
            if all(code is not None for code in codes):
                return -1, [int(c) for c in codes if c is not None]
            time.sleep(0.1)

    def stop(self, grace_s: float) -> None:
        """End the ranks still running: SIGTERM, and SIGKILL for those still there after
        `grace_s`."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(p.poll() is None for p in self.ranks):
            time.sleep(0.1)
        self.signal_all(signal.SIGKILL)
        for process in self.ranks:
            process.wait()

    def describe_failure(self, failed: int, code: int) -> str:
        """Which rank failed first and why: the first failure a rank announced, else the
        exit of rank `failed` (killed, or gone before it could say)."""
        exit = _describe_exit(code)
        announced = self.board.failures()
        if not announced:
            return f"rank {failed} failed ({exit})"
        first = announced[0]
        if first.rank == failed:
            return f"rank {failed} failed ({exit}) {first.text}"
        return f"{first.message()} (rank {failed} exited first: {exit})"


def launch(train_args: Sequence[str], nproc: int, max_restarts: int) -> int:
    """Run `keisei train train_args` as `nproc` local ranks; the exit status of the whole run."""
    group: LocalGroup | None = None
    presses = 0

    def forward_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        if group is not None:
            group.signal_all(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, forward_sigint)
    try:
        restart = 0
        while True:
            group = LocalGroup(train_args, nproc, restart, max_restarts)
            failed, codes = group.wait()
            if failed < 0:
                return STOPPED_BY_USER if STOPPED_BY_USER in codes else 0
            code = codes[failed]
            group.stop(GRACE_S)
            failure = group.describe_failure(failed, code)
            if presses or restart >= max_restarts:
                _logger.error(
                    "%s; %s",
                    failure,
                    "stopping" if presses else f"no restarts left (--max-restarts {max_restarts})",
                )
                return code if code > 0 else 1
            restart += 1
            _logger.warning(
                "%s; restarting all %d ranks from the latest checkpoint (restart %d of %d)",
                failure,
                nproc,
                restart,
                max_restarts,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
        if group is not None:
            group.stop(5.0)
