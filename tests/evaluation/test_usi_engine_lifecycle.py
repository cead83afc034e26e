"""A USI opponent's process across a match: one engine for all its games, replaced only after a
crash or a hang, and every wait for it (handshake and new game included) bounded by the
configured timeout rather than a fixed start-up one."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from keisei.cli import main
from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.players.builtin import RandomPlayer
from keisei.evaluation.players.usi import UsiPlayer
from keisei.evaluation.players.usi_client import UsiEngine
from keisei.evaluation.ratings.elo import EloRegistry
from tests.support.checkpoints import save_checkpoint
from tests.support.engines import fairy_stockfish

FAKE = Path(__file__).resolve().parents[1] / "support" / "fake_usi_engine.py"
HUGE_S = 3600.0
"""Stands in for the engine's fixed start-up timeout: a test that waited for it would time out."""


def fake_command(mode: str, *extra: str | Path) -> str:
    return shlex.join([sys.executable, str(FAKE), mode, *map(str, extra)])


def pids(pid_file: Path) -> list[int]:
    return [int(line) for line in pid_file.read_text(encoding="utf-8").split()]


@pytest.fixture
def huge_startup_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's own start-up timeout, made huge: only the configured one may end a wait."""
    defaults = UsiEngine.__init__.__kwdefaults__
    assert defaults is not None and "startup_timeout_s" in defaults
    monkeypatch.setitem(defaults, "startup_timeout_s", HUGE_S)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("huge_startup_default")
def test_an_engine_that_never_finishes_its_handshake_loses_each_game_at_the_configured_timeout(
    tmp_path: Path,
):
    pid_file = tmp_path / "pids"
    engine = UsiPlayer(
        fake_command("never_ready", "--pid-file", pid_file), timeout_s=0.3, name="never-ready"
    )
    try:
        games = play_match(RandomPlayer(0), engine, MatchSettings(games=3, max_plies=20))
    finally:
        engine.close()
    assert [g.outcome for g in games] == ["win"] * 3
    assert [g.reason for g in games] == ["engine_timeout"] * 3
    assert len(pids(pid_file)) == 3  # a hung engine is killed; each game tries a fresh one


def test_a_fairy_stockfish_match_runs_in_one_engine_process(tmp_path: Path):
    pid_file = tmp_path / "pids"
    wrapper = tmp_path / "fairy-stockfish.sh"  # notes its pid, then becomes the engine
    wrapper.write_text(f'#!/bin/sh\necho $$ >> "{pid_file}"\nexec "{fairy_stockfish()}"\n')
    wrapper.chmod(0o755)
    engine = UsiPlayer(str(wrapper), options={"Skill Level": "-20"}, byoyomi_ms=None, nodes=50,
                       timeout_s=30)  # fmt: skip
    played_by: list[list[int]] = []
    try:
        games = play_match(
            RandomPlayer(0),
            engine,
            MatchSettings(games=4, max_plies=40),
            on_game=lambda _: played_by.append(pids(pid_file)),
        )
    finally:
        engine.close()
    assert all(g.reason not in ("engine_crash", "engine_timeout", "illegal_move") for g in games)
    assert all(g.plies > 0 for g in games)
    assert len(played_by) == 4 and all(len(seen) == 1 for seen in played_by)


def test_an_engine_that_crashes_mid_game_is_restarted_for_the_next_game(tmp_path: Path):
    pid_file, marker = tmp_path / "pids", tmp_path / "crashed"
    command = fake_command("crash_once", "--pid-file", pid_file, "--marker", marker)
    engine = UsiPlayer(command, timeout_s=10, name="crash-once")
    try:
        games = play_match(RandomPlayer(0), engine, MatchSettings(games=4, max_plies=20))
    finally:
        engine.close()
    assert marker.exists()
    assert [g.reason for g in games] == ["engine_crash", "resign", "resign", "resign"]
    assert len(pids(pid_file)) == 2  # the crashed one, then one for all the other games


def test_an_engine_found_dead_between_games_is_restarted_and_loses_nothing(tmp_path: Path):
    pid_file = tmp_path / "pids"
    engine = UsiPlayer(fake_command("exit_after_move", "--pid-file", pid_file), timeout_s=10,
                       name="exits-after-its-move")  # fmt: skip
    try:
        games = play_match(RandomPlayer(0), engine, MatchSettings(games=3, max_plies=20))
    finally:
        engine.close()
    # Each game was played (the engine resigned at its first move), none lost as a crash.
    assert [g.reason for g in games] == ["resign"] * 3
    assert len(pids(pid_file)) == 3


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("huge_startup_default")
def test_keisei_evaluate_timeout_flag_bounds_an_engine_that_never_gets_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # `keisei evaluate`'s command line in this process, so that the client's own start-up
    # timeout is the huge one: only --timeout can end the wait.
    run = save_checkpoint(tmp_path / "run", step=32)
    opponent = "usi:" + fake_command("never_ready")
    code = main(["evaluate", str(run), "--opponent", opponent, "--games", "2", "--max-plies", "20",
                 "--timeout", "0.5"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "end reasons: engine_timeout 2" in out
    with EloRegistry(run / "elo.sqlite") as registry:
        assert [g.reason for g in registry.games()] == ["engine_timeout"] * 2


def test_keisei_evaluate_refuses_a_timeout_that_is_not_positive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = save_checkpoint(tmp_path / "run", step=32)
    code = main(["evaluate", str(run), "--opponent", "random", "--games", "1", "--timeout", "0"])
    assert code == 2
    assert "--timeout must be a positive number of seconds, got 0" in capsys.readouterr().err
    assert not (run / "elo.sqlite").exists()
