"""Subprocess side of the checkpoint tests: runs a store in a process the test can kill or limit.

python -m tests.checkpoint.child forkserver DIR
    imports once, then for each "fork" line on stdin forks a process that resumes from DIR's
    latest checkpoint and saves in a loop until killed ("ready PID STEP"); once that process
    is dead, reports "exited PID STATUS". Forking skips the second of imports per process.
python -m tests.checkpoint.child fsize DIR   save, then limit the file size (RLIMIT_FSIZE) so
                                             the next background write fails, then recover
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path

from keisei.checkpoint import CheckpointStore, CheckpointWriteError, TrainingState
from tests.checkpoint.helpers import TinyNet, fill_weights

LOOP_HIDDEN = 16384  # about 0.7 MB per checkpoint: writes take long enough to be interrupted


def loop_state(step: int, model: TinyNet) -> TrainingState:
    fill_weights(model, step)
    return TrainingState(
        step=step,
        model=model,
        counters={"episodes": step},
        callback_state={"step": step},
        architecture={"hidden": LOOP_HIDDEN},
    )


def save_forever(directory: Path) -> None:
    model = TinyNet(LOOP_HIDDEN)
    store = CheckpointStore(directory, keep_last=2, keep_every=7)
    step = store.load_latest().step
    print("ready", os.getpid(), step, flush=True)
    while True:
        step += 1
        store.save(loop_state(step, model), wait=step % 3 == 0)


def forkserver(directory: Path) -> None:
    print("started", flush=True)
    for line in sys.stdin:
        if line.strip() != "fork":
            break
        pid = os.fork()
        if pid == 0:
            try:
                save_forever(directory)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        print("exited", pid, status, flush=True)


def fsize(directory: Path) -> None:
    model = TinyNet(256)
    store = CheckpointStore(directory, async_save=True)
    store.save(TrainingState(step=1, model=model), wait=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
    store.save(TrainingState(step=2, model=model))  # returns: the write fails in the background
    result: dict[str, object] = {}
    try:
        store.flush()
    except CheckpointWriteError as exc:
        result = {"error": str(exc), "name": exc.name, "cause": repr(exc.__cause__)}
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    result["recovered"] = store.save(TrainingState(step=4, model=model), wait=True).name
    store.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    {"forkserver": forkserver, "fsize": fsize}[sys.argv[1]](Path(sys.argv[2]))
