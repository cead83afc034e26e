"""A small pool of persistent worker processes for background evaluation.

Why not `concurrent.futures.ProcessPoolExecutor`: a crashed worker breaks that whole pool, and a
running task cannot be stopped. Here a worker that dies fails only its own task (with
`WorkerCrashedError`, naming the process and exit code) and is replaced at once; cancelling a
running task's future kills its worker (the future then raises `CancelledError`). Workers are
started with the `spawn` method, run at a lower CPU priority (`nice`, inherited by the engines they
start) with few threads, so that training keeps the cores it needs.

Why a niceness and not `SCHED_IDLE`: an idle-class process runs only on CPU time nobody else
wants, so while other processes keep every core busy (a second training, a ladder, CI) it gets
next to none, and evaluations wait until training ends. Under the normal scheduler a process at
nice N gets CPU time in proportion to its weight whatever the load: at nice 5 about a third of
what one thread at nice 0 gets (1.25**-5), so beside a training thread on a saturated machine
the worker gets about a quarter of the training's CPU time (more when a core is free), which an
evaluation needs far less of (see `EvaluationConfig.worker_nice`).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from keisei.log import get_logger

_log = get_logger("evaluation.workers")


class WorkerCrashedError(RuntimeError):
    """The worker process running a task died before answering."""


class RemoteTaskError(RuntimeError):
    """A task raised in its worker; the message carries the worker's traceback."""


def _lower_priority(nice: int) -> None:
    """Lower this process's CPU priority by `nice` (0: none), where the platform allows it."""
    if nice <= 0:
        return
    try:
        os.nice(nice)
    except (AttributeError, OSError) as exc:
        _log.warning("the evaluation worker keeps its priority (nice %d refused: %s)", nice, exc)


def _worker_main(conn: Connection, nice: int, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # see _Worker: the parent stops its workers
    _lower_priority(nice)
    import torch

    torch.set_num_threads(threads)
    while True:
        message = conn.recv()
        if message is None:
            return
        task_id, fn, args = message
        try:
            conn.send((task_id, True, fn(*args)))
        except BaseException as exc:
            detail = "".join(traceback.format_exception(exc))
            conn.send((task_id, False, f"{type(exc).__name__}: {exc}\n{detail}"))


class TaskFuture(Future):  # type: ignore[type-arg]
    """A future whose `cancel()` also stops a task that is already running."""

    def __init__(self, pool: WorkerPool, task_id: int) -> None:
        super().__init__()
        self._pool = pool
        self.task_id = task_id
        self._kill_requested = False

    def cancel(self) -> bool:
        if super().cancel():
            return True
        if self.done():
            return False
        self._kill_requested = True
        return self._pool._kill_task(self.task_id)


class _Worker:
    def __init__(self, context: Any, nice: int, threads: int, name: str) -> None:
        parent, child = context.Pipe()
        self.conn: Connection = parent
        self.process: BaseProcess = context.Process(
            target=_worker_main, args=(child, nice, threads), name=name, daemon=True
        )
        # Ctrl-C in a terminal reaches the whole process group, and a worker still starting
        # (importing) would die of it with a traceback: it inherits an ignored SIGINT (which
        # survives exec; only the main thread can set it) and ignores it once it runs. The
        # parent stops its workers itself.
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                self.process.start()
            finally:
                signal.signal(signal.SIGINT, previous)
        else:
            self.process.start()
        child.close()
        self.task: tuple[int, TaskFuture] | None = None


class WorkerPool:
    """`submit(fn, *args)` runs a top-level function in one of `workers` processes."""

    def __init__(
        self, workers: int = 1, *, nice: int = 5, threads: int = 1, name: str = "keisei-eval"
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._context = multiprocessing.get_context("spawn")
        self._nice, self._threads, self._name = nice, threads, name
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, TaskFuture, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._ids = itertools.count()
        self._workers = [self._spawn(i) for i in range(workers)]
        self._wake_read, self._wake_write = self._context.Pipe(duplex=False)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"{name}-dispatch", daemon=True)
        self._thread.start()

    def _spawn(self, index: int) -> _Worker:
        return _Worker(self._context, self._nice, self._threads, f"{self._name}-{index}")

    @property
    def pids(self) -> list[int | None]:
        return [worker.process.pid for worker in self._workers]

    def submit(self, fn: Callable[..., Any], *args: Any) -> TaskFuture:
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            task_id = next(self._ids)
            future = TaskFuture(self, task_id)
            self._queue.append((task_id, future, fn, args))
        self._wake()
        return future

    def _wake(self) -> None:
        try:
            self._wake_write.send(None)
        except (OSError, ValueError):
            pass

    def _kill_task(self, task_id: int) -> bool:
        with self._lock:
            for worker in self._workers:
                if worker.task is not None and worker.task[0] == task_id:
                    _log.info("stopping the evaluation worker (pid %s)", worker.process.pid)
                    worker.process.kill()
                    return True
        return False

    def _dispatch(self) -> None:
        with self._lock:
            for worker in self._workers:
                while worker.task is None and self._queue:
                    task_id, future, fn, args = self._queue.popleft()
                    if not future.set_running_or_notify_cancel():
                        continue
                    worker.task = (task_id, future)
                    worker.conn.send((task_id, fn, args))

    def _run(self) -> None:
        while True:
            self._dispatch()
            with self._lock:
                if self._closed and not self._queue and all(w.task is None for w in self._workers):
                    return
                handles: list[Any] = [self._wake_read]
                for worker in self._workers:
                    handles += [worker.conn, worker.process.sentinel]
            ready = wait(handles, timeout=1.0)
            if self._wake_read in ready:
                while self._wake_read.poll():
                    self._wake_read.recv()
            for index, worker in enumerate(list(self._workers)):
                got_data = worker.conn in ready
                if got_data:
                    self._receive(worker)
                died = worker.process.sentinel in ready
                if died or (got_data and not worker.process.is_alive()):
                    self._replace(index, worker)

    def _receive(self, worker: _Worker) -> None:
        try:
            task_id, ok, payload = worker.conn.recv()
        except (EOFError, OSError):
            return  # the process died; its sentinel reports it
        with self._lock:
            task, worker.task = worker.task, None
        if task is None or task[0] != task_id:
            return
        future = task[1]
        if ok:
            future.set_result(payload)
        else:
            future.set_exception(RemoteTaskError(payload))

    def _replace(self, index: int, worker: _Worker) -> None:
        worker.process.join(timeout=1)
        code = worker.process.exitcode
        with self._lock:
            task, worker.task = worker.task, None
            closing = self._closed
            if not closing:
                self._workers[index] = self._spawn(index)
        worker.conn.close()
        if task is None:
            if not closing:
                _log.warning(
                    "evaluation worker pid %s exited (code %s); replaced", worker.process.pid, code
                )
            return
        future = task[1]
        if future.done():
            return
        if future._kill_requested:
            future.set_exception(CancelledError(f"task {task[0]} was cancelled"))
            return
        message = (
            f"evaluation worker pid {worker.process.pid} died with exit code {code} "
            f"while running task {task[0]}; a new worker replaces it"
        )
        _log.error(message)
        future.set_exception(WorkerCrashedError(message))

    def shutdown(self, *, wait_for_tasks: bool = False) -> None:
        """Stop the workers: cancel what waits, and kill what runs unless `wait_for_tasks`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
        for _, future, _, _ in pending:
            future.cancel()
        if not wait_for_tasks:
            for worker in self._workers:
                if worker.task is not None:
                    worker.task[1].cancel()
        self._wake()
        self._thread.join(timeout=30)
        for worker in self._workers:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
