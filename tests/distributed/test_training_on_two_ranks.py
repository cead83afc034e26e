"""Two real ranks of `keisei train` on CPU (gloo): one run directory, one writer of checkpoints
and of evaluations, the same weights on every rank, exact resume, resume across world sizes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from keisei.checkpoint import load_model_weights, read_manifest, resolve_checkpoint
from keisei.checkpoint.run_layout import RunLayout
from keisei.log import read_metrics
from tests.support.rank_probes import read_notes
from tests.support.ranks import extra_callbacks, latest_step, probe, run, train_command

pytestmark = pytest.mark.slow

TWO = ("--nproc-per-node", "2")


def test_two_ranks_train_evaluate_and_checkpoint_like_one_process(tmp_path: Path):
    overrides = [
        "training.total_timesteps=512",
        "evaluation.enable_periodic_evaluation=true",
        "evaluation.evaluation_interval_timesteps=256",
        "evaluation.num_games=2",
        "evaluation.max_plies=24",
        "evaluation.async_policy=queue",
        extra_callbacks(probe("WeightDigest"), probe("CollectiveFromRankZero")),
    ]
    result = run(train_command("two", tmp_path, overrides, *TWO))
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "two"
    assert [p.name for p in tmp_path.iterdir()] == ["two"]  # one run directory
    assert "training finished at step 512" in result.stdout
    assert result.stdout.count("training finished") == 1  # one summary, from rank 0

    notes = read_notes(run_dir)
    digests: dict[int, dict[int, str]] = {0: {}, 1: {}}
    for row in notes:
        if row["kind"] == "weights":
            digests[row["rank"]][row["step"]] = row["digest"]
    assert sorted(digests[0]) == [64 * k for k in range(1, 9)]
    assert digests[0] == digests[1]  # identical weights on both ranks after every epoch
    assert len(set(digests[0].values())) == 8  # and they did change

    # A rank-zero callback calling a collective is refused (it would hang), then disabled.
    refused = [row for row in notes if row["kind"] == "collective_refused"]
    assert refused and all(row["rank"] == 0 for row in refused)
    assert "CollectiveInRankZeroWork" in refused[0]["error"]

    # One checkpoint writer: each step once, and the final one holds rank 1's games.
    checkpoints = sorted(p.name for p in RunLayout(run_dir).checkpoints.glob("step_*"))
    assert checkpoints == sorted(set(checkpoints)) and "step_000000512" in checkpoints
    manifest = read_manifest(resolve_checkpoint(run_dir))
    assert manifest["extra"]["world_size"] == 2 and len(manifest["extra"]["peers"]) == 1

    # One evaluation writer: 2 evaluations x 2 games in the registry, each game recorded once.
    with sqlite3.connect(RunLayout(run_dir).elo_database) as db:
        per_step = dict(db.execute("SELECT step, COUNT(*) FROM games GROUP BY step").fetchall())
    assert per_step == {256: 2, 512: 2}
    assert len(list(RunLayout(run_dir).games.rglob("*.csa"))) == 4

    # Metrics once per step, with the games of both ranks counted.
    rows = [r for r in read_metrics(RunLayout(run_dir).metrics) if "games/finished" in r]
    assert [r["step"] for r in rows] == [64 * k for k in range(1, 9)]
    assert rows[-1]["games/finished"] == manifest["counters"]["episodes"]
    peer_games = manifest["extra"]["peers"][0]["game_stats"]["games"]
    own_games = manifest["extra"]["game_stats"]["games"]
    assert manifest["counters"]["episodes"] == own_games + peer_games > own_games


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_model_weights(checkpoint)


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def two_rank_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 2-rank run of 8 epochs with a checkpoint every 4."""
    model_dir = tmp_path_factory.mktemp("baseline")
    result = run(train_command("base", model_dir, ["training.total_timesteps=512"], *TWO))
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir / "base"


def test_resume_with_the_same_two_ranks_is_bitwise_exact(two_rank_baseline: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(two_rank_baseline, copy)
    halfway = RunLayout(copy).checkpoints / "step_000000256"
    for later in RunLayout(copy).checkpoints.glob("step_*"):
        if later.name > halfway.name:
            shutil.rmtree(later)
    result = run(
        [
            *train_command("copy", tmp_path, ["training.total_timesteps=512"], *TWO),
            "--resume",
            str(halfway),
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_bitwise_equal(
        _weights(RunLayout(copy).checkpoints / "step_000000512"),
        _weights(RunLayout(two_rank_baseline).checkpoints / "step_000000512"),
    )


def test_resume_two_ranks_as_one_restarts_the_other_games(two_rank_baseline: Path, tmp_path: Path):
    halfway = RunLayout(two_rank_baseline).checkpoints / "step_000000256"
    one = tmp_path / "one"
    shutil.copytree(two_rank_baseline, one)
    for later in RunLayout(one).checkpoints.glob("step_*"):
        if later.name > halfway.name:
            shutil.rmtree(later)
    result = run(
        train_command("one", tmp_path, ["training.total_timesteps=512"], "--resume", str(one))
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming with 1 rank(s) from a checkpoint written by 2" in result.stderr
    assert "games in progress of rank 1 are dropped" in result.stderr
    assert latest_step(one) == 512
    manifest = read_manifest(resolve_checkpoint(one))
    before = read_manifest(resolve_checkpoint(halfway))
    assert manifest["extra"]["world_size"] == 1 and manifest["extra"]["peers"] == []
    # Every rank's games still count.
    assert manifest["counters"]["episodes"] >= before["counters"]["episodes"]
    assert manifest["counters"]["updates"] == 8


def test_resume_one_rank_as_two_starts_new_games_on_rank_1(tmp_path: Path):
    first = run(train_command("grow", tmp_path, ["training.total_timesteps=256"]))
    assert first.returncode == 0, first.stderr[-3000:]
    result = run(
        [
            *train_command("grow", tmp_path, ["training.total_timesteps=512"], *TWO),
            "--resume",
            "latest",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming with 2 rank(s) from a checkpoint written by 1" in result.stderr
    assert "rank 1 start new games" in result.stderr
    run_dir = tmp_path / "grow"
    assert latest_step(run_dir) == 512
    manifest = read_manifest(resolve_checkpoint(run_dir))
    assert manifest["extra"]["world_size"] == 2 and manifest["counters"]["updates"] == 8
    assert json.loads(json.dumps(manifest["extra"]["peers"]))[0]["env"]


def test_the_same_command_runs_under_plain_torchrun(tmp_path: Path):
    import sys

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "keisei"]  # fmt: skip
    command = train_command("torchrun", tmp_path, ["training.total_timesteps=128"])
    result = run([*torchrun, *command[command.index("train") :]])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("training finished at step 128") == 1
    assert latest_step(tmp_path / "torchrun") == 128
    manifest = read_manifest(resolve_checkpoint(tmp_path / "torchrun"))
    assert manifest["extra"]["world_size"] == 2


def test_two_ranks_agree_with_search_improved_self_play(tmp_path: Path):
    """With `selfplay.playouts` > 0 each rank searches its own games; the update still leaves
    both ranks with the same weights after every epoch."""
    overrides = [
        "training.total_timesteps=256",
        "selfplay.playouts=4",
        extra_callbacks(probe("WeightDigest")),
    ]
    result = run(train_command("search", tmp_path, overrides, *TWO))
    assert result.returncode == 0, result.stderr[-3000:]
    digests: dict[int, dict[int, str]] = {0: {}, 1: {}}
    for row in read_notes(tmp_path / "search"):
        if row["kind"] == "weights":
            digests[row["rank"]][row["step"]] = row["digest"]
    assert sorted(digests[0]) == [64, 128, 192, 256]
    assert digests[0] == digests[1]
    assert len(set(digests[0].values())) == 4
    rows = [r for r in read_metrics(RunLayout(tmp_path / "search").metrics) if "ppo/entropy" in r]
    assert all("ppo/improved_cross_entropy" in r for r in rows)
