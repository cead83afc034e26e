"""Search-improved self-play: the rollout's policy targets are the Gumbel search's improved
policies (over legal moves only, summing to 1), the stored log-probabilities and values are the
network's own, and the update trains the policy towards the targets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from keisei.config import PPOConfig, SelfPlayConfig
from keisei.model import ActorCritic, Architecture, masked_logits
from keisei.rl.improved_policy import improved_policy_loss
from keisei.rl.ppo import PPO
from keisei.rl.rollout import SelfPlayCollector, self_play_search
from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.gumbel import GumbelSearch
from keisei.shogi import VecShogiEnv

PLAYOUTS = 8


def network(seed: int = 0) -> ActorCritic:
    torch.manual_seed(seed)
    model = ActorCritic(Architecture(blocks=1, channels=8, value_hidden=8))
    with torch.no_grad():  # a policy and values far from uniform, so the search has work to do
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    return model.eval()


def collector(model: ActorCritic, envs: int = 6, steps: int = 1) -> SelfPlayCollector:
    env = VecShogiEnv(envs, seed=3, max_plies=60, random_opening_plies=6)
    search = self_play_search(model, SelfPlayConfig(playouts=PLAYOUTS), envs, torch.device("cpu"))
    return SelfPlayCollector(env, steps, torch.device("cpu"), 0.99, 0.95, search=search)


def test_the_targets_are_the_search_s_improved_policies_over_legal_moves():
    model = network()
    play = collector(model)
    play.env.reset()
    games = [game.copy() for game in play.env.games]
    state = torch.random.get_rng_state()
    rollout = play.collect(model)

    torch.random.set_rng_state(state)  # the search draws its noise first, as in `collect`
    again = GumbelSearch(BatchEvaluator(model, 128, "cpu"), PLAYOUTS).run_many(games)
    assert rollout.targets is not None
    targets = rollout.targets.numpy()
    masks = rollout.masks.numpy()
    assert max(np.abs(r.improved - r.prior).max() for r in again) > 1e-2  # not just the prior
    for row, result in enumerate(again):
        assert targets[row].sum() == pytest.approx(1.0, abs=1e-6)
        assert (targets[row][~masks[row]] == 0).all()  # nothing on an illegal label
        np.testing.assert_allclose(targets[row][result.labels], result.improved, atol=1e-7)
        assert int(rollout.actions[row]) == result.label  # the search's move was played


def test_stored_log_probabilities_and_values_are_the_network_s_own():
    model = network(1)
    rollout = collector(model, steps=3).collect(model)
    with torch.no_grad():
        logits, values = model(rollout.obs.float())
    logp = torch.log_softmax(masked_logits(logits, rollout.masks), dim=-1)
    chosen = logp.gather(1, rollout.actions[:, None]).squeeze(-1)
    torch.testing.assert_close(rollout.logprobs, chosen, atol=1e-5, rtol=0)
    torch.testing.assert_close(rollout.values, values, atol=1e-6, rtol=0)


def test_the_improved_policy_loss_is_the_cross_entropy_over_legal_labels():
    logits = torch.tensor([[0.0, 1.0, 2.0, 50.0]])
    mask = torch.tensor([[True, True, True, False]])
    targets = torch.tensor([[0.2, 0.3, 0.5, 0.0]])
    log_z = math.log(1 + math.e + math.e**2)
    expected = -(0.2 * (0 - log_z) + 0.3 * (1 - log_z) + 0.5 * (2 - log_z))
    assert improved_policy_loss(logits, mask, targets).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("target", ["improved", "improved+ppo"])
def test_the_update_moves_the_policy_towards_the_targets(target: str):
    model = network(2)
    rollout = collector(model, envs=8, steps=8).collect(model)
    assert rollout.targets is not None
    config = PPOConfig(minibatch_size=32, update_epochs=8, learning_rate=3e-3, entropy_coef=0.0)

    def cross_entropy() -> float:
        with torch.no_grad():
            logits, _ = model(rollout.obs.float())
        return improved_policy_loss(logits, rollout.masks, rollout.targets).item()

    before = cross_entropy()
    stats = PPO(model, config, 1, torch.device("cpu"), policy_target=target).update(rollout)
    assert cross_entropy() < before - 0.05
    assert "ppo/improved_cross_entropy" in stats
    if target == "improved":
        assert stats["ppo/policy_loss"] == pytest.approx(stats["ppo/improved_cross_entropy"])
    else:  # the surrogate is added: the two differ by -L^CLIP
        assert stats["ppo/policy_loss"] != pytest.approx(stats["ppo/improved_cross_entropy"])


def test_an_unknown_policy_target_is_refused():
    with pytest.raises(ValueError, match="policy_target"):
        PPO(network(), PPOConfig(), 1, torch.device("cpu"), policy_target="soft")
