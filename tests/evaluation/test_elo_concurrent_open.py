"""Many processes opening one new Elo database at the same moment: nobody fails, nothing is lost.

Switching a new file to WAL mode needs it to itself, and SQLite refuses at once (no busy handler)
while another process holds it; the registry retries under its timeout instead of failing.
"""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from keisei.evaluation.ratings.elo import EloRegistry

PROCESSES = 8
ROUNDS = 60


def _open_record_close(
    index: int, paths: list[str], barrier: Barrier, report: Queue[tuple[int, list[str]]]
) -> None:
    """For each round: wait for every process, open that round's new file, register, record one
    game, close. Errors are reported, not raised, so one failure does not hide the others."""
    errors: list[str] = []
    for path in paths:
        try:
            barrier.wait(timeout=60)
            with EloRegistry(path, timeout_s=30) as registry:
                registry.ensure_player("random", "random")
                registry.ensure_player(f"p{index}", "agent")
                registry.record_game(f"p{index}", "random", index % 2, "checkmate", index + 1)
        except Exception as exc:  # every failure is the finding
            errors.append(f"{Path(path).name}: {exc!r}")
    report.put((index, errors))


@pytest.mark.timeout(240)
def test_eight_processes_opening_each_new_database_together_lose_no_game(tmp_path: Path):
    paths = [str(tmp_path / f"round_{i:02d}.sqlite") for i in range(ROUNDS)]
    # Fresh processes, forked from one server that imported this module once (not 8 imports).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    barrier = context.Barrier(PROCESSES)
    report: Queue[tuple[int, list[str]]] = context.Queue()
    processes = [
        context.Process(target=_open_record_close, args=(i, paths, barrier, report))
        for i in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        reports = dict(report.get(timeout=180) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    errors = [error for index in sorted(reports) for error in reports[index]]
    assert errors == []
    expected = {"random": PROCESSES} | {f"p{i}": 1 for i in range(PROCESSES)}
    for path in paths:
        with EloRegistry(path) as registry:
            assert len(registry.games()) == PROCESSES, path
            assert {p.name: p.games for p in registry.players()} == expected, path


def test_a_database_locked_past_the_timeout_raises_an_error_naming_the_file(tmp_path: Path):
    path = tmp_path / "elo.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)  # another writer, rollback-journal mode
    try:
        holder.execute("CREATE TABLE other (x INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError, match=re.escape(str(path))) as raised:
            EloRegistry(path, timeout_s=0.3)
        assert "still locked" in str(raised.value)
        assert type(raised.value).__name__ == "EloDatabaseBusyError"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Once the other writer is gone, the same file opens and works.
    with EloRegistry(path, timeout_s=5) as registry:
        registry.ensure_player("random", "random")
        assert [p.name for p in registry.players()] == ["random"]
