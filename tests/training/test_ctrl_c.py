"""Ctrl-C pressed in a terminal reaches every process of the group: background evaluation
workers ignore it (no traceback from them; the trainer stops them), and a second press while the
final checkpoint and teardown run does not cut them short: the run ends with exit 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from keisei.checkpoint import CheckpointStore
from tests.support.tiny_config import TINY


def wait_for(condition, what: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_ctrl_c_twice_in_a_terminal_ends_cleanly_with_exit_130(tmp_path: Path):
    marker = tmp_path / "teardown"
    slow = {"target": "tests.support.faults:SlowClose", "kwargs": {"marker": str(marker)}}
    overrides = [
        *TINY,
        f"logging.model_dir={tmp_path}",
        "training.total_timesteps=100000000",
        "evaluation.enable_periodic_evaluation=true",
        "evaluation.async_mode=true",
        "evaluation.evaluation_interval_timesteps=64",
        "evaluation.num_games=2",
        "evaluation.max_plies=40",
        f"callbacks.extra=[{slow}]",
    ]
    command = [sys.executable, "-m", "keisei.cli", "train", "--no-live", "--run-name", "c"]
    for override in overrides:
        command += ["--set", override]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        metrics = tmp_path / "c" / "metrics.jsonl"
        # A few epochs in: the evaluation worker process is up (idle, or playing at idle
        # priority).
        wait_for(lambda: metrics.exists() and metrics.read_text().count("ppo/policy_loss") >= 3,
                 "training to start", process)  # fmt: skip
        os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C: the whole group
        wait_for(lambda: Path(f"{marker}.closing").exists(), "teardown", process)
        os.killpg(process.pid, signal.SIGINT)  # again, while teardown runs
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, output
    assert Path(f"{marker}.closed").exists()  # teardown ran to its end
    assert "Traceback" not in output, output
    assert "already stopping" in output
    checkpoint = CheckpointStore(tmp_path / "c" / "checkpoints").load_latest()
    assert checkpoint.manifest["clean"] is True
