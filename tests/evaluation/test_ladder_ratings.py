"""The ladder's rating rules: fits with fixed players, which references get stored, refits."""

from __future__ import annotations

import pytest

from keisei.evaluation.ladder.ratings import (
    fit_with_fixed,
    rate_agent,
    references_around,
    refit_references,
    two_sided,
)
from keisei.evaluation.ratings.bradley_terry import fit_ratings


def games(a: str, b: str, wins: int, draws: int, losses: int) -> list[tuple[str, str, float]]:
    return [(a, b, 1.0)] * wins + [(a, b, 0.5)] * draws + [(a, b, 0.0)] * losses


def test_with_only_the_anchor_fixed_it_is_fit_ratings():
    rows = games("x", "random", 7, 2, 3) + games("y", "x", 4, 4, 4) + games("y", "random", 9, 0, 3)
    expected = fit_ratings(rows, anchor="random")
    got = fit_with_fixed(rows, {"random": 0.0})
    assert set(got) == set(expected)
    for name, fit in expected.items():
        assert got[name].rating == pytest.approx(fit.rating, abs=1e-6)
        assert got[name].low == pytest.approx(fit.low, abs=1e-6)
        assert got[name].games == fit.games


def test_fixed_players_keep_their_ratings_and_the_free_one_lands_between():
    rows = games("agent", "weak", 8, 0, 2) + games("agent", "strong", 2, 0, 8)
    fitted = fit_with_fixed(rows, {"weak": 100.0, "strong": 700.0})
    assert fitted["weak"].rating == 100.0 and fitted["weak"].low == fitted["weak"].high
    assert fitted["strong"].rating == 700.0
    # symmetric results: midway, but for the weak prior's pull towards random (0)
    assert 390.0 < fitted["agent"].rating < 400.0
    assert fitted["agent"].low < 400.0 < fitted["agent"].high
    assert fitted["agent"].games == 20
    with pytest.raises(ValueError, match="fixed"):
        fit_with_fixed(rows, {})


def test_two_sided_records():
    rows = games("agent", "r", 0, 1, 0) + games("agent", "s", 3, 0, 0)
    assert two_sided(rows, "r") and two_sided(rows, "agent")
    assert not two_sided(rows, "s")
    assert not two_sided(rows, "nobody")


def test_new_references_are_fitted_with_the_agent_and_stored_only_when_two_sided():
    two = games("agent", "random", 9, 0, 3) + games("agent", "new", 3, 2, 5)
    rows = two + games("agent", "crushing", 0, 0, 6)
    agent, new = rate_agent(rows, "agent", {"random": 0.0})
    assert agent is not None
    without, _ = rate_agent(two, "agent", {"random": 0.0})
    assert without is not None and agent.rating == without.rating  # one-sided games left out
    alone = fit_with_fixed(games("agent", "random", 9, 0, 3), {"random": 0.0})["agent"]
    assert agent.rating == pytest.approx(alone.rating, abs=5.0)  # the new one tells little
    assert set(new) == {"new"}
    assert new["new"].rating > agent.rating  # it scored better than the agent
    assert new["new"].games == 10
    # with a stored rating it stays fixed and nothing new is returned
    agent2, new2 = rate_agent(rows, "agent", {"random": 0.0, "new": 50.0})
    assert agent2 is not None and new2 == {}
    assert agent2.rating != agent.rating


def test_no_fixed_reference_played_means_no_scale():
    agent, new = rate_agent(games("agent", "new", 3, 3, 3), "agent", {"random": 0.0})
    assert agent is None and new == {}


def test_refit_uses_every_agent_and_keeps_only_references_linked_to_random():
    rows = (games("a1", "random", 8, 0, 2) + games("a1", "ref", 4, 0, 6)
            + games("a2", "random", 9, 1, 0) + games("a2", "ref", 6, 2, 2)
            + games("a3", "island", 2, 2, 2) + games("a1", "wall", 0, 0, 5))  # fmt: skip
    refitted = refit_references(rows, {"random", "ref", "island", "wall"})
    assert set(refitted) == {"ref"}  # island: not linked to random; wall: one-sided
    assert refitted["ref"].games == 20
    assert refitted["ref"].rating == pytest.approx(fit_ratings(rows, anchor="random")["ref"].rating)


def test_references_around_a_rating():
    ratings = {"random": 0.0, "low": 150.0, "mid": 400.0, "high": 900.0}
    assert references_around(420.0, ratings) == ("mid", "high")
    assert references_around(400.0, ratings) == ("mid", "high")
    assert references_around(-50.0, ratings) == (None, "random")
    assert references_around(1200.0, ratings) == ("high", None)
