"""The ladder's sequential test: the Wilson interval and when it stops play at a reference."""

from __future__ import annotations

import math

import pytest

from keisei.evaluation.ladder.stopping import Score, Verdict, verdict, wilson_interval


def score(wins: int = 0, draws: int = 0, losses: int = 0) -> Score:
    return Score(wins, draws, losses)


def test_wilson_interval_matches_the_formula_and_contains_the_share():
    low, high = wilson_interval(6, 6)
    z = 1.959964
    assert low == pytest.approx(6 / (6 + z * z), abs=1e-5)  # all wins: n / (n + z²)
    assert high == 1.0
    low, high = wilson_interval(3, 10)
    assert low < 0.3 < high
    assert (low, high) == pytest.approx((0.1078, 0.6032), abs=1e-4)  # textbook values
    wider = wilson_interval(3, 10, confidence=0.99)
    assert wider[0] < low and wider[1] > high


def test_wilson_interval_is_symmetric_and_handles_no_games():
    low, high = wilson_interval(2, 8)
    mirrored = wilson_interval(6, 8)
    assert (low, high) == pytest.approx((1 - mirrored[1], 1 - mirrored[0]))
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="not a score"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


def test_draws_count_half():
    assert score(2, 2, 0).points == 3.0
    assert score(2, 2, 0).share == 0.75
    assert score(1, 2, 1).interval() == wilson_interval(2, 4)
    assert str(score(5, 1, 0)) == "5/1/0"
    assert score(1, 0, 0).add("draw").add("loss") == score(1, 1, 1)
    with pytest.raises(ValueError, match="unknown outcome"):
        score().add("resign")


def test_no_decision_before_min_games_however_lopsided():
    assert verdict(score(5), planned=20, min_games=6) is Verdict.CONTINUE
    assert verdict(score(losses=5), planned=20, min_games=6) is Verdict.CONTINUE


def test_a_clear_win_passes_early_and_a_clear_loss_cannot_reach():
    assert verdict(score(6), planned=20, min_games=6) is Verdict.PASSED
    assert verdict(score(losses=6), planned=20, min_games=6) is Verdict.CANNOT_REACH
    # 5 of 6 is not yet clear: the interval's lower end is below one half
    assert wilson_interval(5, 6)[0] < 0.5
    assert verdict(score(5, 0, 1), planned=20, min_games=6) is Verdict.CONTINUE
    assert verdict(score(9, 0, 1), planned=20, min_games=6) is Verdict.PASSED


def test_draws_never_decide_and_all_planned_games_leave_it_undecided():
    assert verdict(score(draws=19), planned=20, min_games=6) is Verdict.CONTINUE
    assert verdict(score(draws=20), planned=20, min_games=6) is Verdict.UNDECIDED
    assert verdict(score(10, 0, 10), planned=20, min_games=6) is Verdict.UNDECIDED
    # a clear result at the last game is still stated as such
    assert verdict(score(15, 5, 0), planned=20, min_games=6) is Verdict.PASSED


def test_fewer_planned_games_than_min_games_decide_at_the_last_one():
    assert verdict(score(3), planned=4, min_games=6) is Verdict.CONTINUE
    assert verdict(score(4), planned=4, min_games=6) is Verdict.PASSED
    assert verdict(score(2, 0, 2), planned=4, min_games=6) is Verdict.UNDECIDED


def test_the_decision_is_exactly_the_interval_leaving_one_half():
    for n in range(1, 21):
        for wins in range(n + 1):
            for draws in range(n - wins + 1):
                s = score(wins, draws, n - wins - draws)
                low, high = s.interval()
                got = verdict(s, planned=20, min_games=6)
                if n < 6:
                    assert got is Verdict.CONTINUE
                elif low > 0.5:
                    assert got is Verdict.PASSED
                elif high < 0.5:
                    assert got is Verdict.CANNOT_REACH
                else:
                    assert got is (Verdict.UNDECIDED if n == 20 else Verdict.CONTINUE)
                assert not math.isnan(low) and 0 <= low <= s.share <= high <= 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        verdict(score(1), planned=0, min_games=6)
