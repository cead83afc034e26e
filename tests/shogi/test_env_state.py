"""A saved environment restores to one that plays on exactly as the original."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keisei.shogi import VecShogiEnv


def test_state_round_trip_continues_identically():
    original = VecShogiEnv(6, seed=3, max_plies=40, random_opening_plies=2)
    original.reset()
    for _ in range(37):
        original.step(original.sample_random_labels())
    state = json.loads(json.dumps(original.state_dict()))

    restored = VecShogiEnv(6, seed=999, max_plies=40, random_opening_plies=2)
    restored.load_state_dict(state)
    assert restored.started
    np.testing.assert_array_equal(restored.current()[0], original.current()[0])
    np.testing.assert_array_equal(restored.current()[1], original.current()[1])
    finished = 0
    for _ in range(60):  # long enough for games to end and restart from the shared stream
        a = original.step(original.sample_random_labels())
        b = restored.step(restored.sample_random_labels())
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.rewards, b.rewards)
        assert [(i, r.usi_moves, r.result) for i, r in a.finished] == [
            (i, r.usi_moves, r.result) for i, r in b.finished
        ]
        finished += len(a.finished)
    assert finished > 0


def test_loading_a_state_for_another_size_is_refused():
    env = VecShogiEnv(2)
    env.reset()
    with pytest.raises(ValueError, match="saved environment has 2 games, this one 3"):
        VecShogiEnv(3).load_state_dict(env.state_dict())


def test_an_illegal_saved_move_is_reported():
    env = VecShogiEnv(1)
    env.reset()
    state = env.state_dict()
    state["games"][0]["usi_moves"] = ["7g7f", "7g7f"]
    with pytest.raises(ValueError, match="7g7f"):
        VecShogiEnv(1).load_state_dict(state)
