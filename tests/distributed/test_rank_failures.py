"""When something goes wrong on one rank of two (real `keisei train` ranks, gloo on CPU): failures
are agreed at the epoch boundary, a dead rank is restarted or reported, Ctrl-C stops both, and
mistakes in the set-up end every rank with a clear message instead of a hang."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keisei.checkpoint import read_manifest, resolve_checkpoint
from keisei.checkpoint.run_layout import RunLayout
from tests.support.rank_probes import read_notes
from tests.support.ranks import (
    extra_callbacks,
    keisei_env,
    latest_step,
    probe,
    run,
    train_command,
)

pytestmark = pytest.mark.slow

TWO = ("--nproc-per-node", "2")


def test_a_best_effort_callback_failing_on_rank_1_is_disabled_on_both_at_the_same_step(
    tmp_path: Path,
):
    overrides = [
        "callbacks.max_consecutive_failures=2",
        extra_callbacks(probe("FailOnRank", rank=1, step=128)),
    ]
    result = run(train_command("agree", tmp_path, overrides, *TWO))
    assert result.returncode == 0, result.stderr[-3000:]
    calls = {0: [], 1: []}
    for row in read_notes(tmp_path / "agree"):
        calls[row["rank"]].append(row["step"])
    # Fails on rank 1 at 128 and 192; disabled on both ranks from then on (total 256).
    assert calls[1] == [64, 128, 192]
    assert calls[0] == calls[1]
    assert "disabled: it failed on rank 1, so every rank disables it at step 192" in result.stderr


def test_a_critical_failure_on_rank_1_stops_both_ranks_with_a_final_checkpoint(tmp_path: Path):
    overrides = [
        "training.total_timesteps=100000",
        extra_callbacks(probe("CriticalOnRank", rank=1, step=192)),
    ]
    result = run(train_command("critical", tmp_path, overrides, *TWO))
    assert result.returncode == 1
    assert "critical callback CriticalOnRank failed in on_step_end at step 192" in result.stderr
    assert "the callbacks failed on rank 1 at step 192" in result.stderr  # rank 0's account
    run_dir = tmp_path / "critical"
    assert latest_step(run_dir) == 192  # rank 0's final checkpoint, at the failing step
    manifest = read_manifest(resolve_checkpoint(run_dir))
    assert manifest["clean"] and "rank 1" in manifest["failure"]


def test_a_rank_killed_mid_run_restarts_the_group_from_the_latest_checkpoint(tmp_path: Path):
    overrides = [
        "training.total_timesteps=512",
        extra_callbacks(probe("KillRankOnce", rank=1, step=320)),
    ]
    result = run(train_command("phoenix", tmp_path, overrides, *TWO, "--max-restarts", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rank 1 failed (killed by SIGKILL); restarting all 2 ranks" in result.stderr
    assert "resuming" in result.stderr and "from its latest checkpoint" in result.stderr
    assert "training finished at step 512" in result.stdout
    run_dir = tmp_path / "phoenix"
    assert (run_dir / "probes" / "killed").exists()
    assert latest_step(run_dir) == 512
    assert read_manifest(resolve_checkpoint(run_dir))["counters"]["updates"] == 8


def test_without_restarts_a_killed_rank_ends_the_run_with_a_clear_error(tmp_path: Path):
    overrides = [
        "training.total_timesteps=100000",
        extra_callbacks(probe("KillRankOnce", rank=1, step=192)),
    ]
    started = time.monotonic()
    result = run(train_command("lost", tmp_path, overrides, *TWO))
    assert result.returncode != 0
    assert "rank 1 failed (killed by SIGKILL); no restarts left" in result.stderr
    assert "lost contact with another rank" in result.stderr or "training FAILED" in result.stderr
    assert time.monotonic() - started < 60  # well within distributed.timeout_s = 60 + grace
    assert latest_step(tmp_path / "lost") is not None


def test_ctrl_c_on_the_launcher_stops_both_ranks_at_the_end_of_the_same_epoch(tmp_path: Path):
    command = train_command(
        "stop",
        tmp_path,
        ["training.total_timesteps=100000000", extra_callbacks(probe("WeightDigest"))],
        *TWO,
    )
    process = subprocess.Popen(
        command, env=keisei_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    notes = tmp_path / "stop" / "probes" / "rank1.jsonl"
    deadline = time.monotonic() + 120
    while not (notes.exists() and notes.read_text().count("\n") >= 3):
        assert process.poll() is None and time.monotonic() < deadline, "no progress"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    last = {row["rank"]: row["step"] for row in read_notes(tmp_path / "stop")}
    assert last[0] == last[1]
    assert latest_step(tmp_path / "stop") == last[0]
    assert "Traceback" not in stderr


def _start_rank(rank: int, port: int, command: list[str], **env: str) -> subprocess.Popen[str]:
    variables = {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    return subprocess.Popen(
        command,
        env={**keisei_env(), **variables, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ranks_started_with_different_configs_all_exit_naming_the_mismatch(tmp_path: Path):
    from keisei.training.ranks.launch import free_port

    port = free_port()
    ranks = [
        _start_rank(0, port, train_command("mismatch", tmp_path, ["ppo.learning_rate=0.001"])),
        _start_rank(1, port, train_command("mismatch", tmp_path, ["ppo.learning_rate=0.002"])),
    ]
    outputs = [rank.communicate(timeout=120)[1] for rank in ranks]
    assert [rank.returncode for rank in ranks] == [2, 2]
    assert "ranks [1] have a different configuration from rank 0" in outputs[0]
    assert not (tmp_path / "mismatch").exists()


def test_a_rank_that_cannot_reach_the_rendezvous_exits_after_the_timeout(tmp_path: Path):
    from keisei.training.ranks.launch import free_port

    command = train_command("alone", tmp_path, ["distributed.timeout_s=3"])
    started = time.monotonic()
    rank = _start_rank(1, free_port(), command)
    _, stderr = rank.communicate(timeout=120)
    assert rank.returncode == 1
    assert "rank 1 of 2 could not join the process group at 127.0.0.1:" in stderr
    assert "within 3 s (distributed.timeout_s)" in stderr
    assert time.monotonic() - started < 60


def test_a_world_size_that_does_not_divide_the_epoch_is_refused_before_any_rank_starts(
    tmp_path: Path,
):
    result = run(train_command("three", tmp_path, [], "--nproc-per-node", "3"))
    assert result.returncode == 2
    assert "'training.steps_per_epoch' = 64 does not divide among 3 ranks" in result.stderr
    assert not (tmp_path / "three").exists()


def test_torchrun_style_restarts_need_a_run_name(tmp_path: Path):
    command = [sys.executable, "-m", "keisei", "train", "--no-live"]
    result = subprocess.run(
        command,
        env={**keisei_env(), "WORLD_SIZE": "2", "RANK": "0", "TORCHELASTIC_MAX_RESTARTS": "2"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "needs --run-name" in result.stderr


# ------------------------------------------------------------------- failing fast, unagreed

STOP_LIMIT_S = 60.0
"""A generous bound for "every rank stopped within 30 s of the failure" (a loaded CI machine)."""

FAILS_IN_UPDATE = [
    "training.total_timesteps=100000",
    "distributed.timeout_s=1800",  # the default: nothing below may wait for it
    extra_callbacks(probe("RaiseInUpdate", rank=1, step=192)),  # 192: no checkpoint yet
]
PROBE_ERROR = "RuntimeError: probe failure in the PPO update on rank 1"


def _seconds_from_failure_to_end(run_dir: Path, ended: float) -> float:
    (raised,) = [row for row in read_notes(run_dir) if row["kind"] == "raised_in_update"]
    return ended - raised["time"]


def test_rank_1_raising_inside_the_update_stops_both_ranks_at_once_naming_it(tmp_path: Path):
    result = run(train_command("update", tmp_path, FAILS_IN_UPDATE, *TWO))
    seconds = _seconds_from_failure_to_end(tmp_path / "update", time.time())
    print(f"launcher: every rank stopped {seconds:.1f} s after rank 1 raised in its update")
    assert seconds < STOP_LIMIT_S
    assert result.returncode == 1
    # The launcher names the rank that failed and its error; rank 0 says why it stopped.
    assert f"rank 1 failed (exit status 1) at step 192: {PROBE_ERROR}; no restarts" in (
        result.stderr
    )
    assert f"training FAILED at step 192: rank 1 failed at step 192: {PROBE_ERROR}" in (
        result.stderr
    )
    # Rank 1 has a log of its own, with its error and its traceback in it.
    own_log = RunLayout(tmp_path / "update").rank_log(1)
    assert own_log.name == "train.rank1.log"
    text = own_log.read_text()
    assert "keisei.trainer: run directory" in text
    assert f"rank 1 failed at step 192: {PROBE_ERROR}; the others stop too" in text
    assert "Traceback" in text and "[rank 1]" not in text
    # Rank 0 stopped through its teardown: its final checkpoint records why.
    (final,) = RunLayout(tmp_path / "update").checkpoints.glob("*-interrupted")
    manifest = read_manifest(final)
    assert manifest["step"] == 192 and not manifest["clean"]
    assert f"rank 1 failed at step 192: {PROBE_ERROR}" in manifest["failure"]
    assert latest_step(tmp_path / "update") == 128  # what --resume latest takes


def test_rank_1_raising_inside_the_update_stops_both_ranks_under_torchrun(tmp_path: Path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "keisei"]  # fmt: skip
    command = train_command("torchrun", tmp_path, FAILS_IN_UPDATE)
    result = run([*torchrun, *command[command.index("train") :]])
    seconds = _seconds_from_failure_to_end(tmp_path / "torchrun", time.time())
    print(f"torchrun: every rank stopped {seconds:.1f} s after rank 1 raised in its update")
    assert seconds < STOP_LIMIT_S
    assert result.returncode == 1
    # torchrun's summary names rank 1 and its error (from the error file rank 1 wrote) ...
    summary = result.stderr[result.stderr.index("Root Cause") :]
    assert "rank      : 1" in summary and PROBE_ERROR in summary
    # ... and rank 0 says why it stopped.
    assert f"training FAILED at step 192: rank 1 failed at step 192: {PROBE_ERROR}" in (
        result.stderr
    )
    assert RunLayout(tmp_path / "torchrun").rank_log(1).is_file()
