"""Rated checkpoints are kept: retention never deletes a checkpoint a rating names (with
`checkpoint.keep_rated`, the default), nor one an evaluation waits for; and `keisei ratings`
marks the players whose checkpoint is gone when retention was told to delete them."""

from __future__ import annotations

from pathlib import Path

import pytest

from keisei.checkpoint import checkpoint_name, read_evaluation, step_of
from keisei.cli import main
from keisei.evaluation.during_training.rated import RatedCheckpoints, checkpoint_step
from keisei.evaluation.ladder.registry import AgentRating, LadderRegistry
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.evaluation.result import GameResult
from keisei.log import read_metrics
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer
from tests.support.checkpoints import save_checkpoint
from tests.support.tiny_config import TINY


def _win(opponent: str) -> GameResult:
    return GameResult(opponent=opponent, agent_color="black", outcome="win", reason="mate",
                      plies=30)  # fmt: skip


def test_checkpoint_step_reads_a_registry_name() -> None:
    assert checkpoint_step("r/step_000000128", "r") == 128
    assert checkpoint_step("r/step_000000128+puct16", "r") == 128
    assert checkpoint_step("other/step_000000128", "r") is None
    assert checkpoint_step("random", "r") is None
    assert checkpoint_step("r/latest", "r") is None


def test_rated_checkpoints_are_the_players_of_both_registries(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = runs / "r"
    rated = RatedCheckpoints(run)
    assert rated() == set()
    assert not run.exists()  # reading creates nothing
    checkpoints = run / "checkpoints"
    with EloRegistry(run / "elo.sqlite") as elo:
        elo.ensure_player("random", "random")
        elo.ensure_player("fs", "usi", path="/usr/games/fairy-stockfish")  # a program, not gone
        elo.record_result("fs", _win("random"))
        elo.ensure_player("r/step_000000010", "agent", path=str(checkpoints / "step_000000010"))
        elo.ensure_player("r/step_000000020+puct8", "agent",
                          path=str(checkpoints / "step_000000020"))  # fmt: skip
        elo.ensure_player("other/step_000000030", "agent",
                          path=str(runs / "other" / "checkpoints" / "step_000000030"))  # fmt: skip
        moved = tmp_path / "old" / "r" / "checkpoints" / "step_000000080"  # rated, then moved
        elo.ensure_player("r/step_000000080", "agent", path=str(moved))
    with LadderRegistry(runs / "ladder.sqlite") as ladder:
        ladder.add_game("s1", "r/step_000000040+puct4", _win("fairy-stockfish"))
        ladder.add_game("s1", "other/step_000000050", _win("fairy-stockfish"))
        ladder.add_game("s2", "other/step_000000050", _win("r/step_000000060"))
        ladder.add_agent_rating(AgentRating("s3", "r/step_000000070", 100.0, 50.0, 150.0, 12,
                                            str(runs / "ladder.sqlite"), 0.0))  # fmt: skip
    assert rated() == {10, 20, 40, 60, 70, 80}


def test_ratings_marks_players_whose_checkpoint_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = save_checkpoint(tmp_path / "run", step=20)
    monkeypatch.chdir(tmp_path)
    kept = run / "checkpoints" / checkpoint_name(20)
    gone = run / "checkpoints" / checkpoint_name(10)  # deleted by retention (keep_rated: false)
    with EloRegistry(run / "elo.sqlite") as elo:
        elo.ensure_player("random", "random")
        elo.ensure_player("fs", "usi", path="/usr/games/fairy-stockfish")  # a program, not gone
        elo.record_result("fs", _win("random"))
        for checkpoint in (gone, kept):
            name = f"run/{checkpoint.name}"
            elo.ensure_player(name, "agent", path=str(checkpoint.resolve()), step=20)
            elo.record_result(name, _win("random"))
    assert main(["ratings", str(run)]) == 0
    cells = [[cell.strip() for cell in line.split("│")[1:-1]]
             for line in capsys.readouterr().out.splitlines() if line.startswith("│")]  # fmt: skip
    checkpoint_of = {row[0]: row[-1] for row in cells}
    assert checkpoint_of == {
        "run/step_000000010": "(checkpoint deleted)",
        "run/step_000000020": "run/checkpoints/step_000000020",
        "random": "",
        "fs": "/usr/games/fairy-stockfish",
    }


EVERY_CHECKPOINT = [
    *TINY,
    "training.total_timesteps=512",
    "training.checkpoint_interval_timesteps=64",
    "checkpoint.keep_last=1",
    "evaluation.enable_periodic_evaluation=true",
    "evaluation.evaluation_interval_timesteps=64",
    "evaluation.num_games=4",
    "evaluation.max_plies=40",
]
"""A tiny run with the default settings but `keep_last: 1` and an evaluation at every checkpoint
(in the background, triggers skipped while one runs; the worker starting up takes several epochs,
so without the pins retention deletes a checkpoint before its evaluation loads it)."""


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kept")
    plan = plan_run(None, [*EVERY_CHECKPOINT, f"logging.model_dir={root}"], "kept", None)
    Trainer(plan).train()
    return plan.run_dir


def test_every_rated_player_of_a_keep_last_1_run_loads(
    kept_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = read_metrics(kept_run / "metrics.jsonl")
    assert not any("evaluation/failed" in record for record in records)
    assert "CheckpointNotFoundError" not in (kept_run / "train.log").read_text()
    rated = [int(r["evaluation/step"]) for r in records if "evaluation/step" in r]
    assert rated and rated[0] == 64
    with EloRegistry(kept_run / "elo.sqlite") as registry:
        players = [p for p in registry.players() if p.path is not None]
    assert {p.step for p in players if p.kind == "agent"} >= set(rated)
    for player in players:  # every rated player is a checkpoint that loads and plays
        assert Path(player.path).is_dir(), player
        code = main(["evaluate", player.path, "--opponent", "random", "--games", "1",
                     "--max-plies", "20", "--run-dir", str(kept_run.parent / "cli")])  # fmt: skip
        assert code == 0, player
    capsys.readouterr()


def test_keep_last_counts_only_the_checkpoints_not_rated(kept_run: Path) -> None:
    store = kept_run / "checkpoints"
    on_disk = {step_of(path.name) or 0 for path in store.glob("step_*")}
    rated = RatedCheckpoints(kept_run)()
    with_results = {step for step in on_disk if read_evaluation(store / checkpoint_name(step))}
    assert with_results <= rated
    # Every rated checkpoint, plus the newest of the others (the final one, unless rated too).
    assert on_disk == rated | {512}
