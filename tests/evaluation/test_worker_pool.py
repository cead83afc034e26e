"""Background worker processes: results, crashes reported and replaced, cancellation kills."""

from __future__ import annotations

import os
import time
from concurrent.futures import CancelledError

import pytest

from keisei.evaluation.worker_pool import RemoteTaskError, WorkerCrashedError, WorkerPool


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


def test_cancelling_a_running_task_kills_it(pool: WorkerPool):
    pool.submit(os.getpid).result(timeout=120)  # worker is up
    future = pool.submit(time.sleep, 300)
    deadline = time.monotonic() + 30
    while not future.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert future.cancel()
    with pytest.raises(CancelledError):
        future.result(timeout=60)
    assert time.monotonic() - started < 60  # not the 300 s sleep
    assert pool.submit(os.getpid).result(timeout=120)
