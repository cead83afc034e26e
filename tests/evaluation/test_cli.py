"""`keisei evaluate`, `keisei ratings` and `keisei report` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from keisei.evaluation.ratings.elo import EloRegistry
from tests.support.checkpoints import save_checkpoint


def keisei(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keisei.cli", *args], capture_output=True, text=True, timeout=300
    )


def make_run(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "run", step=128)


def test_evaluate_ratings_and_report(tmp_path: Path):
    run = make_run(tmp_path)
    result = keisei("evaluate", str(run), "--opponent", "greedy", "--games", "4",
                    "--max-plies", "80")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "run/step_000000128 vs greedy" in result.stdout
    assert "games" in result.stdout and "end reasons" in result.stdout
    records = list((run / "games").glob("evaluate-*/*.kifu"))
    assert len(records) == 4
    with EloRegistry(run / "elo.sqlite") as registry:
        assert len(registry.games()) == 4

    ratings = keisei("ratings", str(run))
    assert ratings.returncode == 0, ratings.stderr
    assert "run/step_000000128" in ratings.stdout and "greedy" in ratings.stdout
    assert "95% interval" in ratings.stdout

    report = keisei("report", str(run))
    assert report.returncode == 0, report.stderr
    for name in ("elo.png", "outcomes.png", "report.md"):
        assert (run / "report" / name).stat().st_size > 0
    assert "| run/step_000000128 vs greedy | 4 |" in (run / "report" / "report.md").read_text()


def test_bad_input_is_named_and_nothing_is_written(tmp_path: Path):
    run = make_run(tmp_path)
    bad_opponent = keisei("evaluate", str(run), "--opponent", "stockfish", "--games", "2")
    assert bad_opponent.returncode == 2
    assert "unknown opponent 'stockfish'" in bad_opponent.stderr
    missing = keisei("evaluate", str(tmp_path / "nowhere"), "--opponent", "random")
    assert missing.returncode == 3
    assert "nowhere" in missing.stderr
    no_ratings = keisei("ratings", str(tmp_path / "empty"))
    assert no_ratings.returncode == 2
    assert "no Elo database" in no_ratings.stderr
    assert not (run / "elo.sqlite").exists()
