"""`keisei evaluate`, `keisei ratings` and `keisei report` as a user runs them: `keisei evaluate`
as its own process; the others, and the refusals, through the same command line in this process
(`main(argv)`, output captured), which spares each an interpreter start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from keisei.cli import main
from keisei.evaluation.ratings.elo import EloRegistry
from tests.support.checkpoints import save_checkpoint


def keisei(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keisei.cli", *args], capture_output=True, text=True, timeout=300
    )


def keisei_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`keisei ARGS` in this process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_run(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "run", step=128)


def test_evaluate_ratings_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
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

    code, out, err = keisei_here(capsys, "ratings", str(run))
    assert code == 0, err
    assert "run/step_000000128" in out and "greedy" in out
    assert "95% interval" in out

    code, out, err = keisei_here(capsys, "report", str(run))
    assert code == 0, err
    for name in ("elo.png", "outcomes.png", "report.md"):
        assert (run / "report" / name).stat().st_size > 0
    assert "| run/step_000000128 vs greedy | 4 |" in (run / "report" / "report.md").read_text()


def test_bad_input_is_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = make_run(tmp_path)
    code, _, err = keisei_here(capsys, "evaluate", str(run), "--opponent", "stockfish",
                               "--games", "2")  # fmt: skip
    assert code == 2
    assert "unknown opponent 'stockfish'" in err
    code, _, err = keisei_here(capsys, "evaluate", str(tmp_path / "nowhere"), "--opponent",
                               "random")  # fmt: skip
    assert code == 3
    assert "nowhere" in err
    code, _, err = keisei_here(capsys, "ratings", str(tmp_path / "empty"))
    assert code == 2
    assert "no Elo database" in err
    assert not (run / "elo.sqlite").exists()
