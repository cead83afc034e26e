"""Several training processes (ranks) as one run: joining the process group, and the few
collectives the trainer uses at an epoch boundary.

The world comes from the environment that torchrun (or `keisei train --nproc-per-node N`) sets:
`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` (the env://
rendezvous). Without `WORLD_SIZE` > 1 the world is this one process: every collective below is
local and no process group exists. Backend: NCCL when the ranks train on CUDA (one GPU per local
rank), gloo on CPU.

Rank-zero-only work (checkpoints, evaluation, metrics, display) must never call a collective: the
other ranks are not there to answer, and the group would hang until its timeout. The manager runs
such work inside `rank_zero_work()`, and the collectives here refuse to start inside it.

Beside the process group the ranks share a `FailureBoard`: keys in the rendezvous store (a
TCPStore that the launcher hosts: torchrun's agent, or `keisei train --nproc-per-node`), where a
rank that fails writes its error before its own teardown. The other ranks read it to name that
rank and its error, and to stop at once (`keisei.training.ranks.failures`); the launcher reads it
to say which rank failed first, and why.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from keisei.config import Config, ConfigError
from keisei.log import get_logger, set_rank
from keisei.training.failure_board import FailureBoard, describe

T = TypeVar("T")

_rank_zero_work: ContextVar[str | None] = ContextVar("keisei_rank_zero_work", default=None)


class DistributedError(RuntimeError):
    """The ranks cannot work together: one cannot join, or one was lost."""


class RankFailedError(DistributedError):
    """Another rank failed (a critical callback, an error in its games or its update); this
    rank stops too. `agreed`: every rank stops at this same point (an epoch's agreement), as
    opposed to a failure this rank learnt of when the failed rank's connection closed."""

    def __init__(self, rank: int, message: str, *, agreed: bool = True) -> None:
        super().__init__(message)
        self.rank = rank
        self.agreed = agreed


class CollectiveInRankZeroWork(DistributedError):
    """A collective was called from work that runs on rank 0 only (it would hang)."""


@contextmanager
def rank_zero_work(what: str) -> Iterator[None]:
    """Run `what` (a callback hook, ...) on rank 0 only: collectives inside it raise."""
    token = _rank_zero_work.set(what)
    try:
        yield
    finally:
        _rank_zero_work.reset(token)


def _check_allowed(collective: str) -> None:
    inside = _rank_zero_work.get()
    if inside is not None:
        raise CollectiveInRankZeroWork(
            f"{collective} called inside {inside}, which runs on rank 0 only: the other ranks "
            "would never answer. Declare the callback runs_on = 'all_ranks' to use collectives."
        )


def restart_count() -> int:
    """How many times the launcher has restarted the group (torchrun's
    `TORCHELASTIC_RESTART_COUNT`; `keisei train --nproc-per-node` sets it too)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)


def max_restarts() -> int:
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS") or 0)


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE") or 1)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run (a single process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None
    board: FailureBoard | None = field(default=None, compare=False, repr=False)
    """The ranks' failures (None for a single process)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def device(self, name: str) -> torch.device:
        """`training.device` for this rank: `auto` and `cuda` take the GPU of the local rank
        when several ranks run; `cpu` is the CPU on every rank."""
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name == "cuda" and self.distributed:
            return torch.device("cuda", self.local_rank)
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"training.device = {name!r} but CUDA is not available here")
        return device

    # ------------------------------------------------------------- collectives

    def all_gather(self, obj: T, what: str) -> list[T]:
        """Every rank's `obj`, in rank order, on every rank."""
        _check_allowed(f"all_gather ({what})")
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        with self.lost_rank_reported(what):
            dist.all_gather_object(out, obj)
        return out

    def gather_to_main(self, obj: T, what: str) -> list[T] | None:
        """Every rank's `obj`, in rank order, on rank 0; None on the other ranks."""
        _check_allowed(f"gather ({what})")
        if not self.distributed:
            return [obj]
        out: list[Any] | None = [None] * self.size if self.is_main else None
        with self.lost_rank_reported(what):
            dist.gather_object(obj, out, dst=0)
        return out

    def broadcast_from_main(self, obj: T, what: str) -> T:
        """Rank 0's `obj` on every rank."""
        _check_allowed(f"broadcast ({what})")
        if not self.distributed:
            return obj
        box: list[Any] = [obj]
        with self.lost_rank_reported(what):
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, value: str, what: str) -> None:
        """Every rank holds the same `value` (e.g. the config hash); ConfigError otherwise,
        raised on every rank, naming the ranks that differ from rank 0."""
        values = self.all_gather(value, what)
        differing = [rank for rank, v in enumerate(values) if v != values[0]]
        if differing:
            raise ConfigError(
                f"ranks {differing} have a different {what} from rank 0; every rank must be "
                "started with the same config file and --set overrides"
            )

    def finish_together(self) -> None:
        """After training ended normally on every rank: wait until every rank is done (rank 0
        writes the last checkpoint and drains evaluation meanwhile), so that no rank tears the
        group down under another."""
        if self.distributed and dist.is_initialized():
            with self.lost_rank_reported("the end of training"):
                dist.barrier()

    def close(self) -> None:
        """Leave the process group, and free it now, while the interpreter is whole.

        `destroy_process_group` only unregisters the group: the C++ group (with gloo's worker
        and transport threads) lives while a Python object holds it, and DDP does, inside the
        reference cycles of its hooks, which only the garbage collector frees. Left to the
        collection during interpreter finalization, the group's teardown ran there, and a gloo
        thread that needed the GIL then was ended mid-way: C++ called std::terminate ("terminate
        called without an active exception", SIGABRT) after training had finished. So the
        caller drops the trainer first, and the collection runs here (and no module keeps the
        group: `bind_no_group_at_import`).
        """
        if self.board is not None:
            self.board.forget_errors()
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
            gc.collect()

    # ---------------------------------------------------------------- failures

    def lost_rank_reported(self, what: str) -> contextlib.AbstractContextManager[None]:
        """`lost_rank_reported(what)`, naming the rank whose failure is on the board."""
        return lost_rank_reported(what, self)

    def mark_agreed(self, exc: BaseException) -> None:
        """`exc` stops this rank at a point every rank agreed on: not announced as news."""
        if self.board is not None:
            self.board.mark_agreed(exc)

    def tearing_down(self) -> None:
        """This rank's teardown has begun (after training ended, or failed): from now on a
        SIGTERM or another rank's failure no longer interrupts it."""
        if self.board is not None:
            self.board.stopping = True

    def announce_failure(self, exc: BaseException, step: int | None) -> None:
        """This rank is stopping on `exc`, raised at `step` (None: while starting): tell the
        other ranks and the launcher (before the teardown), unless `exc` reports another rank's
        failure (or a Ctrl-C, which reached every rank). Under torchrun also writes its error
        file, so that its summary names this error. Each exception is announced once."""
        self.tearing_down()
        if self.board is None or isinstance(exc, DistributedError | KeyboardInterrupt):
            return
        if not self.board.first_announcement(exc):
            return
        where = "while starting" if step is None else f"at step {step}"
        text = f"{where}: {describe(exc)}"
        agreed = self.board.is_agreed(exc)
        logger = get_logger("distributed")
        try:
            self.board.announce(self.rank, text, agreed=agreed)
        except (RuntimeError, dist.DistError) as error:
            logger.warning("could not announce this rank's failure: %s", error)
        if not agreed:
            logger.error("rank %d failed %s; the others stop too", self.rank, text, exc_info=exc)
        if os.environ.get("TORCHELASTIC_ERROR_FILE"):
            from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

            ErrorHandler().record_exception(exc)


def is_lost_rank_error(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another rank went away (gloo and NCCL
    report it as a plain RuntimeError)."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        mark in text for mark in ("gloo", "NCCL", "Connection reset", "Connection closed")
    )


@contextmanager
def lost_rank_reported(what: str, world: World | None = None) -> Iterator[None]:
    """Turn a collective failing for want of another rank into a `DistributedError` that says
    so (a rank that died, or one that stopped answering within `distributed.timeout_s`): a
    `RankFailedError` naming the rank and its error when that rank announced its failure on
    the `world`'s board, as a rank that raises does before its connections close."""
    try:
        yield
    except RuntimeError as exc:
        if not is_lost_rank_error(exc):
            raise
        board = None if world is None else world.board
        failure = None if world is None or board is None else board.first_of_others(world.rank)
        if failure is not None:
            message = f"{failure.message()} (seen in {what})"
            raise RankFailedError(failure.rank, message, agreed=False) from exc
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DistributedError(
            f"lost contact with another rank during {what}: {first_line[:300]}"
        ) from exc


def check_devices_for_ranks(config: Config, local_ranks: int) -> bool:
    """Whether `local_ranks` ranks on this machine train on CUDA (one GPU each); ConfigError
    when there are fewer GPUs than that, or `training.device` names one GPU for all of them."""
    name = config.training.device
    on_cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    if not on_cuda or local_ranks <= 1:
        return on_cuda
    if ":" in name:
        raise ConfigError(
            f"'training.device' = {name!r} names one GPU, but {local_ranks} ranks run here; use "
            "cuda or auto (each rank takes the GPU of its local rank)"
        )
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if local_ranks > count:
        raise ConfigError(
            f"{local_ranks} ranks on this machine but it has {count} CUDA device(s); start at "
            "most that many (--nproc-per-node) or set training.device=cpu"
        )
    return True


def bind_no_group_at_import() -> None:
    """Import `torch.distributed.nn.functional` while no group exists. Its functions take
    `group=group.WORLD` as a default argument, evaluated at import: imported during training
    (torch pulls it in lazily, through torch._dynamo and FSDP), they would keep the default group
    alive in a module until the interpreter's finalization, past `World.close`."""
    import torch.distributed.nn.functional  # noqa: F401


def join_world(config: Config) -> World:
    """Join the process group the environment describes (a no-op for a single process).

    Raises `ConfigError` for more local ranks than GPUs or a device that names one GPU for
    several ranks, `DistributedError` when the group is not complete within
    `distributed.timeout_s`.
    """
    size = world_size_from_env()
    if size <= 1:
        return World()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK") or rank)
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE") or size)
    on_cuda = check_devices_for_ranks(config, local_size)
    if on_cuda:
        torch.cuda.set_device(local_rank)
    backend = config.distributed.backend
    if backend == "auto":
        backend = "nccl" if on_cuda else "gloo"
    timeout = config.distributed.timeout_s
    address = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    bind_no_group_at_import()
    try:
        dist.init_process_group(
            backend, rank=rank, world_size=size, timeout=timedelta(seconds=timeout)
        )
    except (dist.DistError, RuntimeError, ValueError) as exc:
        raise DistributedError(
            f"rank {rank} of {size} could not join the process group at {address} within "
            f"{timeout:g} s (distributed.timeout_s): {exc}"
        ) from exc
    board = FailureBoard.connect(
        os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ["MASTER_PORT"]), restart_count()
    )
    world = World(rank, size, local_rank, backend, board)
    if rank != 0:
        set_rank(rank)
    get_logger("distributed").info(
        "rank %d of %d joined (%s, rendezvous %s)", rank, size, backend, address
    )
    return world
