"""Declaring is a choice, and a refused `position` leaves nothing to search.

An opponent who could have declared (entering king, 27-point rule) but moved instead does not end
the engine's game; `go` asks only whether its own side can declare now. After a refused
`position`, `go` resigns and says why rather than play a move of the previous position.
"""

from __future__ import annotations

import pickle

from keisei.evaluation.players.usi_client import UsiEngine
from keisei.shogi import ShogiGame
from keisei.usi.position import PositionTracker, decided_answer, searchable

WAIT_S = 60.0
WHITE_MAY_DECLARE = "K8/9/9/9/9/9/7ss/4kgggg/5bbrr w p 1"
"""White's king in Black's camp with ten pieces there and 27 points: White may declare."""
PASSED_UP = f"sfen {WHITE_MAY_DECLARE} moves 2g3f"
"""White moved a silver out of the camp instead of declaring; Black (a bare king) to move."""
DECLARABLE_AGAIN = f"{PASSED_UP} 9a8a 3f2g 8a9a"
"""The silver went back: White may declare again."""


def ask(engine: UsiEngine, position: str) -> list[str]:
    """Everything the engine says from `position <position>` up to and including `bestmove`."""
    engine.send_line(f"position {position}")
    engine.send_line("go btime 0 wtime 0 byoyomi 200")
    return engine.read_until("bestmove", WAIT_S, "go")


def legal_after(position: str) -> list[str]:
    return ShogiGame.from_usi_position(position, max_plies=None, declaration=False).legal_usi()


def test_a_declaration_passed_up_does_not_end_the_game(engine: UsiEngine) -> None:
    said = ask(engine, PASSED_UP)
    assert not [line for line in said if "error" in line], said
    assert said[-1].split()[1] in legal_after(PASSED_UP)


def test_go_declares_when_the_side_to_move_can_now(engine: UsiEngine) -> None:
    assert ask(engine, f"sfen {WHITE_MAY_DECLARE}")[-1] == "bestmove win"
    said = ask(engine, DECLARABLE_AGAIN)
    assert said[-1] == "bestmove win" and not [line for line in said if "error" in line], said


def test_go_after_a_refused_position_resigns_and_says_why(engine: UsiEngine) -> None:
    assert ask(engine, "startpos moves 7g7f")[-1].split()[1] in legal_after("startpos moves 7g7f")
    said = ask(engine, "startpos moves 7g7f 3c3d 7g7f")  # the third move is illegal
    assert said[-1] == "bestmove resign", said
    errors = [line for line in said if line.startswith("info string error")]
    assert any("'7g7f' is illegal" in line for line in errors), said
    assert any("no position to search" in line for line in errors), said
    # A valid position clears the refusal.
    valid = "startpos moves 7g7f 3c3d"
    said = ask(engine, valid)
    assert not [line for line in said if "error" in line], said
    assert said[-1].split()[1] in legal_after(valid)


def test_a_refusal_keeps_ponder_waiting_for_ponderhit(engine: UsiEngine) -> None:
    engine.send_line("position startpos moves 7g7f 7g7f")
    engine.send_line("go ponder btime 0 wtime 0 byoyomi 200")
    engine.send_line("isready")
    before = engine.read_until("readyok", WAIT_S, "isready")
    assert not [line for line in before if line.startswith("bestmove")], before
    engine.send_line("ponderhit")
    assert engine.read_until("bestmove", WAIT_S, "ponderhit")[-1] == "bestmove resign"


def test_the_tracker_plays_on_past_a_passed_up_declaration() -> None:
    tracker = PositionTracker()
    tracker.set(PASSED_UP.split())
    assert tracker.game.usi_moves == ["2g3f"] and not tracker.game.is_over
    assert decided_answer(tracker.game) is None
    tracker.set(DECLARABLE_AGAIN.split())
    assert not tracker.game.is_over and decided_answer(tracker.game) == "win"


def test_the_search_copy_rules_on_declarations_from_its_root_on() -> None:
    tracker = PositionTracker()
    tracker.set(PASSED_UP.split())
    copy = searchable(tracker.game, declaration=True)
    assert copy.usi_moves == ["2g3f"] and not copy.is_over
    for move in ("9a8a", "3f2g", "8a9a"):
        copy.push_usi(move)
    assert copy.result is not None and copy.result.reason == "declaration"
    assert copy.result.winner == "white"
    # Copies and pickles of it replay the passed-up chance without ending there.
    for again in (copy.copy(), pickle.loads(pickle.dumps(copy))):
        assert again.usi_moves == copy.usi_moves and again.result == copy.result
