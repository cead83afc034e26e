"""Background worker processes: results, crashes reported and replaced, cancellation kills."""

from __future__ import annotations

import os
import time
from concurrent.futures import CancelledError

import pytest

from keisei.evaluation.during_training.worker_pool import (
    RemoteTaskError,
    WorkerCrashedError,
    WorkerPool,
)


@pytest.fixture
def pool():
    workers = WorkerPool(1)
    yield workers
    workers.shutdown()


def test_a_task_runs_in_another_process(pool: WorkerPool):
    assert pool.submit(os.getpid).result(timeout=120) not in (None, os.getpid())


def test_a_crashed_worker_fails_its_task_and_is_replaced(pool: WorkerPool):
    first_pid = pool.submit(os.getpid).result(timeout=120)
    with pytest.raises(WorkerCrashedError, match="died with exit code 3"):
        pool.submit(os._exit, 3).result(timeout=120)
    second_pid = pool.submit(os.getpid).result(timeout=120)
    assert second_pid != first_pid


def test_an_exception_in_the_task_carries_the_worker_traceback(pool: WorkerPool):
    with pytest.raises(RemoteTaskError, match="ZeroDivisionError"):
        pool.submit(divmod, 1, 0).result(timeout=120)
    assert pool.submit(os.getpid).result(timeout=120)  # the worker survived


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cancelling_a_running_task_kills_it(pool: WorkerPool):
    worker_pid = pool.submit(os.getpid).result(timeout=120)  # the one worker is up
    assert pool.pids == [worker_pid]
    future = pool.submit(time.sleep, 300)
    deadline = time.monotonic() + 30
    while not future.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert future.running(), "the task was never handed to the worker"

    assert future.cancel()
    # Only a kill can end the 300 s sleep before this 60 s wait runs out (that would raise
    # TimeoutError, not CancelledError).
    with pytest.raises(CancelledError):
        future.result(timeout=60)
    assert not process_exists(worker_pid), "the worker that ran the task is still alive"
    new_pid = pool.submit(os.getpid).result(timeout=120)
    assert new_pid != worker_pid
    assert pool.pids == [new_pid]


def test_workers_run_at_the_configured_niceness_not_in_the_idle_class(tmp_path):
    """The idle class gets no CPU time while other processes keep every core busy; a niceness
    gets a share whatever the load."""
    from keisei.config import EvaluationConfig
    from keisei.evaluation.during_training.manager import EvaluationManager

    manager = EvaluationManager(EvaluationConfig(worker_nice=3), tmp_path)
    try:
        workers = manager.start_workers()
        policy = workers.submit(os.sched_getscheduler, 0).result(timeout=120)
        nice = workers.submit(os.nice, 0).result(timeout=120)
    finally:
        manager.close()
    assert policy == os.SCHED_OTHER
    assert nice == min(os.nice(0) + 3, 19)
