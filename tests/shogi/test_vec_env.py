"""VecShogiEnv: batched steps, rewards for the mover, automatic restarts, determinism."""

from __future__ import annotations

import cshogi
import numpy as np
import pytest

from keisei.shogi import NUM_LABELS, OBS_SHAPE, IllegalMoveError, ShogiGame, VecShogiEnv

MATE_IN_ONE = "4k4/9/4P4/9/9/9/9/9/4K4 b G 1"


def random_labels(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(row)) for row in mask])


def test_reset_gives_observations_and_masks_of_every_game():
    env = VecShogiEnv(3, start_sfens=[MATE_IN_ONE, "startpos"])
    obs, mask = env.reset()
    assert obs.shape == (3, *OBS_SHAPE) and obs.dtype == np.float32
    assert mask.shape == (3, NUM_LABELS) and mask.dtype == np.bool_
    for i, game in enumerate(env.games):
        np.testing.assert_array_equal(obs[i], game.observation())
        np.testing.assert_array_equal(mask[i], game.legal_mask())
    assert [g.start_sfen for g in env.games] == [MATE_IN_ONE, cshogi.STARTING_SFEN, MATE_IN_ONE]
    assert env.to_move.tolist() == [0, 0, 0]


def test_step_rewards_the_mover_and_restarts_finished_games():
    env = VecShogiEnv(2, start_sfens=[MATE_IN_ONE])
    env.reset()
    mate = ShogiGame(MATE_IN_ONE)
    mate_label = mate.label_for_move(mate.move_for_usi("G*5b"))
    quiet_label = mate.label_for_move(mate.move_for_usi("5i5h"))
    result = env.step(np.array([mate_label, quiet_label]))
    assert result.dones.tolist() == [True, False]
    assert result.reasons == ["checkmate", None]
    assert result.rewards.tolist() == [1.0, 0.0]
    assert result.winners.tolist() == [0, -1]
    assert result.movers.tolist() == [0, 0]
    assert result.to_move.tolist() == [0, 1]  # env 0 restarted: black to move again
    ((index, record),) = result.finished
    assert index == 0 and record.result.reason == "checkmate" and record.usi_moves == ["G*5b"]
    assert env.games[0].ply == 0 and env.games[0].sfen() == MATE_IN_ONE
    np.testing.assert_array_equal(result.obs[0], ShogiGame(MATE_IN_ONE).observation())
    np.testing.assert_array_equal(result.mask[1], env.games[1].legal_mask())


def test_losing_side_is_the_one_that_just_moved_when_the_opponent_declares():
    declare = "R1B1G1B1R/3GKG3/3SSS3/9/9/9/9/9/4k4 w 2P 1"
    env = VecShogiEnv(1, start_sfens=[declare])
    env.reset()
    label = env.games[0].label_for_move(env.games[0].move_for_usi("5i5h"))
    result = env.step(np.array([label]))
    assert result.reasons == ["declaration"]
    assert result.movers.tolist() == [1] and result.winners.tolist() == [0]
    assert result.rewards.tolist() == [-1.0]


def test_ply_limit_ends_every_game_as_a_draw():
    env = VecShogiEnv(4, max_plies=6, seed=1)
    obs, mask = env.reset()
    rng = np.random.default_rng(0)
    for ply in range(6):
        result = env.step(random_labels(mask, rng))
        mask = result.mask
        assert result.dones.all() == (ply == 5)
    assert result.reasons == ["max_plies"] * 4
    assert not result.rewards.any() and (result.winners == -1).all()
    assert sorted(i for i, _ in result.finished) == [0, 1, 2, 3]
    assert all(record.plies == 6 for _, record in result.finished)


def test_an_illegal_label_raises_before_any_game_moves():
    env = VecShogiEnv(3)
    _, mask = env.reset()
    labels = random_labels(mask, np.random.default_rng(0))
    labels[2] = int(np.flatnonzero(~mask[2])[0])
    with pytest.raises(IllegalMoveError, match=r"env 2") as caught:
        env.step(labels)
    assert caught.value.move == labels[2] and caught.value.sfen == cshogi.STARTING_SFEN
    assert all(game.ply == 0 for game in env.games)
    with pytest.raises(ValueError, match="shape"):
        env.step(labels[:2])


def play(env: VecShogiEnv, steps: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    _, mask = env.reset()
    positions = []
    for _ in range(steps):
        result = env.step(random_labels(mask, rng))
        mask = result.mask
        positions += [record.usi_position() for _, record in result.finished]
    return positions, result.obs.copy(), mask.copy()


def test_same_seed_same_games():
    options = {"random_opening_plies": 4, "max_plies": 20}
    first = play(VecShogiEnv(4, seed=5, **options), 30, seed=9)
    second = play(VecShogiEnv(4, seed=5, **options), 30, seed=9)
    other = play(VecShogiEnv(4, seed=6, **options), 30, seed=9)
    assert first[0] == second[0] and len(first[0]) >= 4
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[2], second[2])
    assert first[0] != other[0]


def test_random_opening_plies_vary_the_games_and_are_recorded():
    env = VecShogiEnv(8, seed=3, random_opening_plies=6, start_sfens=["startpos"])
    env.reset()
    assert all(game.ply == 6 and game.opening_plies == 6 for game in env.games)
    assert len({game.sfen() for game in env.games}) == 8
    record = env.games[0].record()
    assert record.opening_plies == 6 and record.start_sfen == cshogi.STARTING_SFEN


def test_start_positions_that_are_already_decided_are_refused():
    with pytest.raises(ValueError, match="already decided"):
        VecShogiEnv(1, start_sfens=["k8/2G6/1S7/9/9/9/9/9/4K4 w - 1"])
    with pytest.raises(ValueError):
        VecShogiEnv(1, max_plies=4, random_opening_plies=4)
    with pytest.raises(ValueError):
        VecShogiEnv(0)


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        VecShogiEnv(1).step(np.array([0]))


def test_random_legal_labels_helper_only_picks_legal_moves():
    env = VecShogiEnv(16, seed=2)
    _, mask = env.reset()
    for _ in range(40):
        labels = env.sample_random_labels()
        assert mask[np.arange(16), labels].all()
        mask = env.step(labels).mask


def test_batched_encoding_matches_each_game_through_restarts():
    env = VecShogiEnv(6, seed=4, max_plies=9, start_sfens=["startpos", MATE_IN_ONE])
    obs, mask = env.reset()
    rng = np.random.default_rng(1)
    restarts = 0
    for _ in range(25):
        labels = env.sample_random_labels(rng)
        before = [game.move_for_label(label) for game, label in zip(env.games, labels, strict=True)]
        played = [game.ply for game in env.games]
        result = env.step(labels)
        restarts += len(result.finished)
        for i, game in enumerate(env.games):
            if not result.dones[i]:
                assert game.ply == played[i] + 1 and game.moves[-1] == before[i]
            np.testing.assert_array_equal(result.mask[i], game.legal_mask())
            np.testing.assert_array_equal(result.obs[i], game.observation())
            assert result.to_move[i] == game.turn
    assert restarts >= 6


def test_a_wider_cshogi_feature_layout_is_refused_rather_than_overrun():
    env = VecShogiEnv(2)
    env.reset()
    cshogi.dlshogi.use_nyugyoku_features(True)  # process-wide switch in cshogi
    try:
        with pytest.raises(RuntimeError, match="use_nyugyoku_features"):
            env.step(env.sample_random_labels())
        with pytest.raises(RuntimeError, match="use_nyugyoku_features"):
            env.reset()
        with pytest.raises(RuntimeError, match="use_nyugyoku_features"):
            ShogiGame().observation()
    finally:
        cshogi.dlshogi.use_nyugyoku_features(False)
    env.reset()
