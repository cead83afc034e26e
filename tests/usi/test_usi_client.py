"""The USI client against scripted misbehaving engines: every failure is a named, bounded error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from keisei.evaluation.players.usi_client import (
    UsiCrashedError,
    UsiEngine,
    UsiError,
    UsiTimeoutError,
)

FAKE = Path(__file__).with_name("fake_engine.py")


def fake(mode: str, **kwargs: object) -> UsiEngine:
    kwargs.setdefault("startup_timeout_s", 20.0)
    return UsiEngine([sys.executable, str(FAKE), mode], name=f"fake-{mode}", **kwargs)  # type: ignore[arg-type]


def test_handshake_identity_options_and_moves() -> None:
    with fake("good", options={"depth": "3", "USI_Hash": "64"}) as engine:
        assert engine.pid is not None and engine.running
        assert engine.engine_name == "Fake Engine" and engine.engine_author == "nobody"
        assert engine.advertised_options == ["Depth", "Book File"]
        engine.new_game()
        # The option was sent with the engine's own spelling, so it took effect.
        assert engine.best_move("startpos", byoyomi_ms=10) == "2g2f"
        assert engine.last_info == "info depth 1 score cp 10 pv 7g7f"
        assert engine.best_move("position startpos moves 7g7f", nodes=5) == "2g2f"
        engine.game_over("win")
        with pytest.raises(ValueError):
            engine.game_over("victory")
        with pytest.raises(ValueError):
            engine.best_move("7g7f 3c3d")
    assert engine.returncode == 0 and not engine.running
    engine.quit()  # idempotent


def test_unknown_option_is_refused_by_name() -> None:
    engine = fake("good", options={"Skill Level": "3"})
    with pytest.raises(UsiError, match=r"fake-good.*unknown option 'Skill Level'.*Depth"):
        engine.start()
    assert not engine.running  # the failed start does not leave a process behind


def test_engine_without_advertised_options_gets_them_unchecked() -> None:
    with fake("no_options", options={"Anything": "1"}) as engine:
        assert engine.best_move("startpos", nodes=1) == "7g7f"


def test_chatty_stderr_does_not_deadlock() -> None:
    with fake("chatty") as engine:
        for _ in range(3):
            assert engine.best_move("startpos", nodes=1) == "7g7f"


@pytest.mark.parametrize("mode", ["hang_go", "stop_go"])
def test_timeout_stops_then_kills(mode: str) -> None:
    engine = fake(mode)
    engine.start()
    with pytest.raises(UsiTimeoutError, match=rf"fake-{mode}.*'bestmove'.*killed"):
        engine.best_move("startpos", byoyomi_ms=10, movetime_timeout_s=0.5)
    assert not engine.running and engine.returncode is not None
    engine.quit()
    with pytest.raises(UsiCrashedError):
        engine.best_move("startpos", nodes=1)


def test_crash_is_reported_with_exit_code_and_stderr() -> None:
    with fake("crash_go") as engine:
        with pytest.raises(UsiCrashedError, match=r"fake-crash_go.*exit code 7.*boom"):
            engine.best_move("startpos", nodes=1)
        assert engine.returncode == 7


def test_missing_handshake_times_out_at_start() -> None:
    engine = fake("no_usiok", startup_timeout_s=0.5)
    with pytest.raises(UsiTimeoutError, match="usiok"):
        engine.start()
    assert not engine.running


def test_engine_that_ignores_quit_is_terminated() -> None:
    engine = fake("ignore_quit")
    engine.start()
    engine.quit(timeout_s=0.2)
    assert not engine.running and engine.returncode not in (None, 0)


def test_malformed_bestmove_is_an_error() -> None:
    with fake("bad_bestmove") as engine:
        with pytest.raises(UsiError, match="malformed bestmove"):
            engine.best_move("startpos", nodes=1)


def test_missing_executable_and_bad_command() -> None:
    with pytest.raises(UsiError, match="no-such-engine.*cannot start"):
        UsiEngine("/nonexistent/no-such-engine").start()
    with pytest.raises(ValueError):
        UsiEngine([])
    engine = UsiEngine("/bin/true --flag")
    assert engine.command == ["/bin/true", "--flag"] and engine.name == "true"
    with pytest.raises(UsiError, match="not started"):
        engine.send_line("usi")


def test_process_that_exits_at_once_is_a_crash() -> None:
    with pytest.raises(UsiCrashedError, match="true"):
        UsiEngine("/bin/true", startup_timeout_s=5).start()
