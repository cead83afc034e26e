"""The self-play collector on the real `VecShogiEnv`, driven by a scripted player.

The player plays moves from a script (or the lowest legal label once the script runs out) with
probability 1, and values each position by its ply: V(position after p plies) = 0.05 (p + 1) +
0.3 * env index. So every stored number can be worked out by hand from the game.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from keisei.rl.rollout import SelfPlayCollector, sample_actions
from keisei.shogi import NUM_LABELS, ShogiGame, VecShogiEnv, normalize_sfen

# White to move; black has a gold in hand and a pawn on 1c next to white's king on 1a.
MATE_SFEN = "8k/9/p7P/9/9/9/9/9/4K4 w G 1"
# White pawn up, black king up, white pawn up, then black drops the gold on 1b: mate.
MATE_SCRIPT = ["9c9d", "5i5h", "9d9e", "G*1b"]
STARTPOS = normalize_sfen("startpos")


def value_of(ply: int, env_index: int = 0) -> float:
    return 0.05 * (ply + 1) + 0.3 * env_index


def lowest_label_move(game: ShogiGame) -> int:
    return game.move_for_label(int(game.legal_labels().min()))


class ScriptedPlayer(nn.Module):
    """Plays the env's games from scripts keyed by start SFEN; values positions by `value_of`."""

    def __init__(self, env: VecShogiEnv, scripts: dict[str, list[str]]) -> None:
        super().__init__()
        self.env = env
        self.scripts = {normalize_sfen(sfen): moves for sfen, moves in scripts.items()}

    def label(self, game: ShogiGame) -> int:
        script = self.scripts.get(game.start_sfen, [])
        if game.ply < len(script):
            return game.label_for_move(game.move_for_usi(script[game.ply]))
        return game.label_for_move(lowest_label_move(game))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        games = self.env.games
        assert obs.shape[0] == len(games)
        logits = torch.full((len(games), NUM_LABELS), -1e4)
        for i, game in enumerate(games):
            logits[i, self.label(game)] = 0.0  # every other label has probability exp(-1e4) = 0
        values = torch.tensor([value_of(g.ply, i) for i, g in enumerate(games)])
        return logits, values


def collector_for(
    env: VecShogiEnv, steps: int, gamma: float, gae_lambda: float
) -> SelfPlayCollector:
    return SelfPlayCollector(env, steps, torch.device("cpu"), gamma, gae_lambda)


def test_each_transition_is_stored_as_its_mover_saw_it():
    env = VecShogiEnv(1, start_sfens=[MATE_SFEN, "startpos"])
    player = ScriptedPlayer(env, {MATE_SFEN: MATE_SCRIPT})
    rollout = collector_for(env, 6, 0.9, 1.0).collect(player)

    # Replay the same moves on separate games: 4 plies of the mating game (white moves first),
    # then 2 of the next game from the start position. Each step must hold the position before
    # its move as its mover sees it (the planes are from the side to move's point of view).
    mating, fresh = ShogiGame(MATE_SFEN), ShogiGame(STARTPOS)
    plays = [(mating, ply, usi) for ply, usi in enumerate(MATE_SCRIPT)]
    plays += [(fresh, 0, None), (fresh, 1, None)]
    for step, (game, ply, usi) in enumerate(plays):
        assert np.array_equal(rollout.obs[step].numpy(), game.observation()), step
        assert np.array_equal(rollout.masks[step].numpy(), game.legal_mask()), step
        move = game.move_for_usi(usi) if usi else lowest_label_move(game)
        assert rollout.actions[step].item() == game.label_for_move(move), step
        assert rollout.values[step].item() == pytest.approx(value_of(ply)), step
        game.push_move(move)
    assert mating.is_over
    assert rollout.logprobs.tolist() == [0.0] * 6  # each scripted move had probability 1


def test_the_result_is_credited_to_both_players_last_moves():
    env = VecShogiEnv(1, start_sfens=[MATE_SFEN, "startpos"])
    collector = collector_for(env, 6, gamma=0.9, gae_lambda=1.0)
    rollout = collector.collect(ScriptedPlayer(env, {MATE_SFEN: MATE_SCRIPT}))

    assert rollout.games_finished == 1
    assert (collector.stats.games, collector.stats.black_wins) == (1, 1)
    assert collector.stats.reasons["checkmate"] == 1
    # Steps 0-3: the mating game (white, black, white, black mates). Steps 4-5: a new game from
    # the start position (black, white), cut by the end of the rollout after 2 plies: black to
    # move there, worth V = value_of(2) to black and -value_of(2) to white.
    # With lambda = 1 each return is the discounted result of the mover's own stream
    # (gamma per own move): the mate +1, the previous black move 0.9 * 1; white's last move -1,
    # its previous one 0.9 * -1.
    v_end = value_of(2)
    expected = [-0.9, 0.9, -1.0, 1.0, 0.9 * v_end, 0.9 * -v_end]
    assert rollout.returns.tolist() == pytest.approx(expected, abs=1e-6)
    assert (rollout.advantages + rollout.values).tolist() == pytest.approx(expected, abs=1e-6)


def test_a_cut_game_bootstraps_from_the_same_movers_next_position():
    # Two games from the start position, neither ends in 5 plies. lambda = 0, so each return is
    # gamma times the value of the next position with the same side to move: two plies later.
    env = VecShogiEnv(2)
    player = ScriptedPlayer(env, {})
    steps, gamma = 5, 0.9
    rollout = collector_for(env, steps, gamma, 0.0).collect(player)

    assert len(rollout) == steps * 2
    assert all(game.ply == steps for game in env.games)
    for env_index in range(2):
        returns = rollout.returns[env_index::2].tolist()
        values = rollout.values[env_index::2].tolist()
        assert values == pytest.approx([value_of(p, env_index) for p in range(steps)])
        # Ply t's mover is next to move at ply t + 2; the last position (ply 5) is the same
        # side's for the move at ply 3, and the other side's for the move at ply 4.
        expected = [gamma * value_of(t + 2, env_index) for t in range(steps - 1)]
        expected.append(gamma * -value_of(steps, env_index))
        assert returns == pytest.approx(expected, abs=1e-6)


def test_games_run_on_across_rollouts():
    env = VecShogiEnv(1)
    player = ScriptedPlayer(env, {})
    collector = collector_for(env, 3, 1.0, 0.0)
    first = collector.collect(player)
    second = collector.collect(player)

    replay = ShogiGame(STARTPOS)
    for _ in range(3):
        replay.push_move(lowest_label_move(replay))
    # The second rollout starts where the first stopped, and the first bootstrapped from it.
    assert np.array_equal(second.obs[0].numpy(), replay.observation())
    assert second.values.tolist() == pytest.approx([value_of(3), value_of(4), value_of(5)])
    assert first.returns[1].item() == pytest.approx(value_of(3))
    assert env.games[0].ply == 6


def test_sampling_never_picks_an_illegal_label():
    generator = torch.Generator().manual_seed(0)
    legal = torch.tensor([7, 300, 1999])
    mask = torch.zeros(64, NUM_LABELS, dtype=torch.bool)
    mask[:, legal] = True

    class Fixed(nn.Module):
        def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # Illegal labels far more likely than legal ones, if they were not masked.
            logits = torch.full((obs.shape[0], NUM_LABELS), 20.0)
            logits[:, legal] = torch.randn(obs.shape[0], 3, generator=generator)
            return logits, torch.zeros(obs.shape[0])

    actions, logprobs, _ = sample_actions(Fixed(), torch.zeros(64, 1), mask)
    assert set(actions.tolist()) <= set(legal.tolist())
    assert bool((logprobs <= 0).all()) and bool(torch.isfinite(logprobs).all())
