"""Running real `keisei train` ranks (2 on CPU, gloo) from the distributed tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keisei.checkpoint import CheckpointStore
from keisei.checkpoint.run_layout import RunLayout
from tests.support.tiny_config import TINY

REPO = Path(__file__).resolve().parents[2]

DISTRIBUTED_TINY = [*TINY, "distributed.timeout_s=60", "env.max_plies=24"]
"""TINY, with a short collective timeout: a test that goes wrong fails instead of hanging."""


def keisei_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return {**env, **extra}


def train_command(
    run_name: str, model_dir: Path, overrides: Sequence[str] = (), *extra_args: str
) -> list[str]:
    command = [sys.executable, "-m", "keisei", "train", "--no-live", "--run-name", run_name]
    for override in [*DISTRIBUTED_TINY, f"logging.model_dir={model_dir}", *overrides]:
        command += ["--set", override]
    return [*command, *extra_args]


def run(command: list[str], timeout: float = 240.0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=keisei_env(**env), capture_output=True, text=True, timeout=timeout
    )


def extra_callbacks(*entries: dict[str, Any]) -> str:
    """A `callbacks.extra=[...]` override for probes in `tests.support.rank_probes`."""
    return "callbacks.extra=[" + ", ".join(str(entry) for entry in entries) + "]"


def probe(name: str, **kwargs: Any) -> dict[str, Any]:
    return {"target": f"tests.support.rank_probes:{name}", "kwargs": kwargs}


def latest_step(run_dir: Path) -> int | None:
    latest = CheckpointStore(RunLayout(run_dir).checkpoints).latest()
    return None if latest is None else int(latest.name.split("_")[1].split("-")[0])
