"""Callbacks that the distributed tests attach to real `keisei train` ranks (through
`callbacks.extra`), to look inside each rank and to make one of them fail on purpose.

Each writes what it saw to `<run>/probes/`, one JSON-lines file per rank.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from keisei.training.callbacks import Callback, TrainerView
from keisei.training.distributed import World


def this_rank() -> int:
    return int(os.environ.get("RANK") or 0)


def note(trainer: TrainerView, kind: str, **fields: Any) -> None:
    directory = trainer.run_dir / "probes"
    directory.mkdir(parents=True, exist_ok=True)
    row = {"kind": kind, "rank": this_rank(), "step": trainer.global_timestep, **fields}
    with (directory / f"rank{this_rank()}.jsonl").open("a", encoding="utf-8") as file:
        file.write(json.dumps(row) + "\n")


def read_notes(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((run_dir / "probes").glob("rank*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class WeightDigest(Callback):
    """Every rank notes a digest of its weights after every epoch."""

    runs_on = "all_ranks"

    def on_step_end(self, trainer: TrainerView) -> None:
        note(trainer, "weights", digest=weights_digest(trainer.model))


class FailOnRank(Callback):
    """Best-effort, on every rank; raises on `rank` from step `step` on. Notes each call."""

    runs_on = "all_ranks"

    def __init__(self, rank: int, step: int) -> None:
        super().__init__()
        self.rank, self.step = rank, step

    def on_step_end(self, trainer: TrainerView) -> None:
        note(trainer, "fail_on_rank_called")
        if this_rank() == self.rank and trainer.global_timestep >= self.step:
            raise RuntimeError(f"probe failure on rank {self.rank}")


class CriticalOnRank(FailOnRank):
    """Like `FailOnRank`, but critical: its failure stops training."""

    critical = True


class KillRankOnce(Callback):
    """On every rank; at `step`, rank `rank` kills itself with SIGKILL (once per run: a marker
    file keeps a restarted group from doing it again)."""

    runs_on = "all_ranks"

    def __init__(self, rank: int, step: int) -> None:
        super().__init__()
        self.rank, self.step = rank, step

    def on_step_end(self, trainer: TrainerView) -> None:
        marker = trainer.run_dir / "probes" / "killed"
        if this_rank() != self.rank or trainer.global_timestep != self.step or marker.exists():
            return
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)


class CollectiveFromRankZero(Callback):
    """A rank-zero callback that (wrongly) calls a collective: it must fail, not hang."""

    def on_step_end(self, trainer: TrainerView) -> None:
        try:
            World().all_gather(1, "a probe")
        except Exception as exc:
            note(trainer, "collective_refused", error=f"{type(exc).__name__}: {exc}")
            raise


class RaiseInUpdate(Callback):
    """On every rank; in the update after step `step`, rank `rank` raises inside the PPO update:
    a gradient hook fails in the backward pass, where DDP's all-reduce of the gradients is
    pending on the other ranks. Notes the time it raised (`raised_in_update`)."""

    runs_on = "all_ranks"

    def __init__(self, rank: int, step: int) -> None:
        super().__init__()
        self.rank, self.step = rank, step

    def on_step_end(self, trainer: TrainerView) -> None:
        if this_rank() != self.rank or trainer.global_timestep != self.step:
            return
        parameters = list(trainer.model.parameters())
        rank, step, run_dir = self.rank, self.step, trainer.run_dir

        def fail(grad: Any) -> Any:
            row = {"kind": "raised_in_update", "rank": rank, "step": step, "time": time.time()}
            with (run_dir / "probes" / f"rank{rank}.jsonl").open("a", encoding="utf-8") as file:
                file.write(json.dumps(row) + "\n")
            raise RuntimeError(f"probe failure in the PPO update on rank {rank}")

        note(trainer, "armed_update_failure")
        parameters[len(parameters) // 2].register_hook(fail)
