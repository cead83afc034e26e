"""The PPO losses and update, checked against values worked out by hand on tiny batches.

`ppo_losses` is tested on hand-made logits; `PPO.update` on a tiny real `ActorCritic` whose policy
head has zero weights (so its logits are its per-plane biases, which the test sets) and whose
value head has zero weights (so every value is tanh of the output bias).
"""

from __future__ import annotations

import math

import pytest
import torch

from keisei.config import PPOConfig
from keisei.model.network import ActorCritic, Architecture
from keisei.rl.ppo import PPO, ppo_losses
from keisei.rl.rollout import Rollout
from keisei.shogi import NUM_LABELS, OBS_SHAPE

CLIP = 0.2


def clipped_objective(ratio: float, advantage: float, eps: float = CLIP) -> float:
    """min(r A, clip(r, 1 - eps, 1 + eps) A): the per-sample L^CLIP term of the paper."""
    clipped = max(1 - eps, min(ratio, 1 + eps))
    return min(ratio * advantage, clipped * advantage)


def legal_log_softmax(logits: list[float], legal: list[int], label: int) -> float:
    """log pi(label) under a softmax over the legal labels only."""
    return logits[label] - math.log(sum(math.exp(logits[j]) for j in legal))


def one_position(
    legal: list[int], illegal_logit: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (2187,), mask (2187,)): random legal logits, every illegal logit `illegal_logit`."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.full((NUM_LABELS,), illegal_logit)
    logits[legal] = torch.randn(len(legal), generator=generator)
    mask = torch.zeros(NUM_LABELS, dtype=torch.bool)
    mask[legal] = True
    return logits, mask


def losses_for_ratios(ratios: list[float], advantages: list[float], normalize: bool = False):
    """`ppo_losses` on one position per sample, with old log-probabilities set so that the
    probability ratio of sample i is ratios[i]. Returns (losses, logits)."""
    legal = [3, 100, 555, 2000]
    rows, masks, old = [], [], []
    for i, ratio in enumerate(ratios):
        logits, mask = one_position(legal, illegal_logit=40.0, seed=i)
        action = legal[i % len(legal)]
        logprob = legal_log_softmax(logits.tolist(), legal, action)
        rows.append(logits)
        masks.append(mask)
        old.append(logprob - math.log(ratio))
    logits = torch.stack(rows).requires_grad_()
    n = len(ratios)
    losses = ppo_losses(
        logits,
        torch.zeros(n),
        torch.stack(masks),
        torch.tensor([legal[i % len(legal)] for i in range(n)]),
        torch.tensor(old),
        torch.tensor(advantages),
        torch.zeros(n),
        clip_coef=CLIP,
        normalize_advantages=normalize,
    )
    return losses, logits


# (ratio, advantage, L^CLIP for that sample, worked out by hand with eps = 0.2)
SURROGATE_CASES = [
    pytest.param(1.1, 2.0, 1.1 * 2.0, id="inside-positive"),
    pytest.param(0.9, -2.0, 0.9 * -2.0, id="inside-negative"),
    # A > 0, r above 1 + eps: the gain is capped at (1 + eps) A.
    pytest.param(1.5, 2.0, 1.2 * 2.0, id="above-positive-clipped"),
    # A < 0, r above 1 + eps: min picks the unclipped, more pessimistic r A.
    pytest.param(1.5, -2.0, 1.5 * -2.0, id="above-negative-unclipped"),
    # A > 0, r below 1 - eps: min picks the unclipped r A.
    pytest.param(0.5, 2.0, 0.5 * 2.0, id="below-positive-unclipped"),
    # A < 0, r below 1 - eps: the gain from lowering pi is capped at (1 - eps) A.
    pytest.param(0.5, -2.0, 0.8 * -2.0, id="below-negative-clipped"),
]


@pytest.mark.parametrize(("ratio", "advantage", "objective"), SURROGATE_CASES)
def test_policy_loss_is_minus_the_clipped_surrogate(
    ratio: float, advantage: float, objective: float
):
    losses, _ = losses_for_ratios([ratio], [advantage])
    assert losses.ratio.item() == pytest.approx(ratio, rel=1e-5)
    assert losses.policy_loss.item() == pytest.approx(-objective, rel=1e-5)


@pytest.mark.parametrize(
    ("ratio", "advantage", "clipped"),
    [(1.1, 2.0, False), (1.5, 2.0, True), (1.5, -2.0, False), (0.5, -2.0, True)],
)
def test_a_clipped_sample_gives_no_policy_gradient(ratio: float, advantage: float, clipped: bool):
    losses, logits = losses_for_ratios([ratio], [advantage])
    losses.policy_loss.backward()
    assert logits.grad is not None
    gradient = logits.grad.abs().sum().item()
    if clipped:
        assert gradient == 0.0
    else:
        assert gradient > 1e-3


def test_policy_loss_averages_the_samples_of_a_minibatch():
    ratios = [1.1, 1.5, 0.5, 0.5]
    advantages = [2.0, 2.0, 2.0, -2.0]
    losses, _ = losses_for_ratios(ratios, advantages)
    # 1.1*2 = 2.2; min(3.0, 1.2*2) = 2.4; min(1.0, 0.8*2) = 1.0; min(-1.0, 0.8*-2) = -1.6
    assert losses.policy_loss.item() == pytest.approx(-(2.2 + 2.4 + 1.0 - 1.6) / 4, rel=1e-5)


def test_the_log_probability_ignores_illegal_labels():
    # Illegal logits of 40 would take almost all the probability if they were not masked: the
    # ratio is then far from 1 instead of the 1.0 computed over legal labels only.
    losses, _ = losses_for_ratios([1.0], [1.0])
    assert losses.log_ratio.item() == pytest.approx(0.0, abs=1e-5)


def test_advantages_are_normalised_over_the_minibatch_when_asked():
    ratios = [0.9, 1.0, 1.1, 1.05]
    advantages = [1.0, 2.0, 3.0, 10.0]
    # By hand: mean 4, squared deviations 9 + 4 + 1 + 36 = 50, sample std sqrt(50 / 3).
    std = math.sqrt(50 / 3)
    normalised = [(a - 4.0) / (std + 1e-8) for a in advantages]
    assert sum(normalised) == pytest.approx(0.0, abs=1e-12)
    # All ratios lie inside [0.8, 1.2], so L^CLIP = mean r A.
    expected_on = -sum(r * a for r, a in zip(ratios, normalised, strict=True)) / 4
    expected_off = -sum(r * a for r, a in zip(ratios, advantages, strict=True)) / 4

    on, _ = losses_for_ratios(ratios, advantages, normalize=True)
    off, _ = losses_for_ratios(ratios, advantages, normalize=False)
    assert on.policy_loss.item() == pytest.approx(expected_on, rel=1e-5)
    assert off.policy_loss.item() == pytest.approx(expected_off, rel=1e-5)
    assert expected_on != pytest.approx(expected_off, rel=1e-2)


def test_a_single_sample_is_not_normalised():
    # One sample has no spread to normalise by; its advantage is used as it is.
    losses, _ = losses_for_ratios([1.1], [3.0], normalize=True)
    assert losses.policy_loss.item() == pytest.approx(-1.1 * 3.0, rel=1e-5)


def test_value_loss_is_half_the_mean_squared_error_without_clipping():
    values = torch.tensor([0.5, -0.25, 0.0, 0.9])
    returns = torch.tensor([1.0, 0.25, -1.0, -1.0])
    # Squared errors 0.25, 0.25, 1.0, 3.61 (the last one far outside any clip range).
    expected = 0.5 * (0.25 + 0.25 + 1.0 + 3.61) / 4
    logits, mask = one_position([0, 1], illegal_logit=0.0)
    losses = ppo_losses(
        logits.expand(4, -1),
        values,
        mask.expand(4, -1),
        torch.zeros(4, dtype=torch.long),
        torch.zeros(4),
        torch.zeros(4),
        returns,
        clip_coef=CLIP,
        normalize_advantages=False,
    )
    assert losses.value_loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("illegal_logit", [-7.0, 0.0, 3.0, 1e4])
def test_entropy_of_a_uniform_policy_over_k_legal_moves_is_log_k(illegal_logit: float):
    rows, masks = [], []
    for k in (1, 3, 30):
        legal = list(range(5, 5 + 70 * k, 70))
        logits = torch.full((NUM_LABELS,), illegal_logit)
        logits[legal] = 0.25  # equal legal logits: uniform over the k legal labels
        mask = torch.zeros(NUM_LABELS, dtype=torch.bool)
        mask[legal] = True
        rows.append(logits)
        masks.append(mask)
    losses = ppo_losses(
        torch.stack(rows),
        torch.zeros(3),
        torch.stack(masks),
        torch.tensor([5, 5, 5]),
        torch.zeros(3),
        torch.zeros(3),
        torch.zeros(3),
        clip_coef=CLIP,
        normalize_advantages=False,
    )
    expected = (math.log(1) + math.log(3) + math.log(30)) / 3
    assert losses.entropy.item() == pytest.approx(expected, rel=1e-6)


def test_entropy_of_a_non_uniform_legal_policy():
    logits, mask = one_position([10, 20], illegal_logit=50.0)
    logits[10], logits[20] = 0.0, math.log(2.0)  # probabilities 1/3 and 2/3
    losses = ppo_losses(
        logits[None],
        torch.zeros(1),
        mask[None],
        torch.tensor([10]),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        clip_coef=CLIP,
        normalize_advantages=False,
    )
    expected = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    assert losses.entropy.item() == pytest.approx(expected, rel=1e-6)


# --- the update, through PPO.update ------------------------------------------------------------


def controlled_model(plane_logits: list[float], value_bias: float) -> ActorCritic:
    """A tiny real network whose logit for label p * 81 + s is plane_logits[p] and whose value
    is tanh(value_bias), whatever the observation."""
    torch.manual_seed(0)
    model = ActorCritic(Architecture(blocks=1, channels=4, value_hidden=4))
    with torch.no_grad():
        model.policy_head.weight.zero_()
        model.policy_head.bias.copy_(torch.tensor(plane_logits))
        model.value_out.weight.zero_()
        model.value_out.bias.fill_(value_bias)
    return model


def make_rollout(
    legal: list[list[int]],
    actions: list[int],
    old_logprobs: list[float],
    advantages: list[float],
    returns: list[float],
    values: list[float],
) -> Rollout:
    n = len(actions)
    masks = torch.zeros(n, NUM_LABELS, dtype=torch.bool)
    for i, labels in enumerate(legal):
        masks[i, labels] = True
    generator = torch.Generator().manual_seed(1)
    return Rollout(
        obs=torch.randint(0, 2, (n, *OBS_SHAPE), dtype=torch.uint8, generator=generator),
        masks=masks,
        actions=torch.tensor(actions),
        logprobs=torch.tensor(old_logprobs),
        values=torch.tensor(values),
        advantages=torch.tensor(advantages),
        returns=torch.tensor(returns),
        games_finished=0,
    )


@pytest.mark.parametrize("normalize", [True, False])
def test_update_reports_the_losses_of_the_current_policy(normalize: bool):
    # Legal labels all in plane 0 (labels 0..80), where every logit is 0: uniform over the k
    # legal labels. Illegal planes get large logits, which masking must ignore.
    planes = [0.0] + [3.0 * p for p in range(1, 27)]
    value_bias = 0.5
    model = controlled_model(planes, value_bias)
    ks = [2, 3, 5, 8]
    legal = [list(range(0, 9 * k, 9)) for k in ks]
    ratios = [0.7, 0.95, 1.1, 1.4]
    advantages = [1.0, -2.0, 0.5, 3.0]
    returns = [1.0, -1.0, 0.5, 0.0]
    old_values = [0.2, -0.3, 0.1, 0.0]
    # pi(a) = 1 / k for every legal a, so old log-probability log(1 / k) - log r gives ratio r.
    old_logprobs = [math.log(1 / k) - math.log(r) for k, r in zip(ks, ratios, strict=True)]
    rollout = make_rollout(legal, [0, 9, 18, 27], old_logprobs, advantages, returns, old_values)

    config = PPOConfig(
        minibatch_size=4, update_epochs=1, clip_coef=CLIP, normalize_advantages=normalize
    )
    stats = PPO(model, config, total_updates=1, device=torch.device("cpu")).update(rollout)

    if normalize:
        mean = sum(advantages) / 4  # 0.625
        std = math.sqrt(sum((a - mean) ** 2 for a in advantages) / 3)
        used = [(a - mean) / (std + 1e-8) for a in advantages]
    else:
        used = advantages
    # Without normalisation by hand: 0.7 (r = 0.7 below the range, A > 0: unclipped), -1.9,
    # 0.55, and min(4.2, 1.2 * 3) = 3.6, so the loss is -(0.7 - 1.9 + 0.55 + 3.6) / 4.
    objective = [clipped_objective(r, a) for r, a in zip(ratios, used, strict=True)]
    if not normalize:
        assert objective == pytest.approx([0.7, -1.9, 0.55, 3.6])
    assert stats["ppo/policy_loss"] == pytest.approx(-sum(objective) / 4, rel=1e-5)

    value = math.tanh(value_bias)
    expected_value_loss = 0.5 * sum((value - r) ** 2 for r in returns) / 4
    assert stats["ppo/value_loss"] == pytest.approx(expected_value_loss, rel=1e-5)
    assert stats["ppo/entropy"] == pytest.approx(sum(math.log(k) for k in ks) / 4, rel=1e-5)
    # |r - 1| > 0.2 for r = 0.7 and r = 1.4 only.
    assert stats["ppo/clip_fraction"] == pytest.approx(0.5)
    expected_kl = sum((r - 1) - math.log(r) for r in ratios) / 4
    assert stats["ppo/approx_kl"] == pytest.approx(expected_kl, rel=1e-4)
    errors = [r - v for r, v in zip(returns, old_values, strict=True)]
    explained = 1 - variance(errors) / variance(returns)
    assert stats["ppo/explained_variance"] == pytest.approx(explained, rel=1e-5)
    assert stats["ppo/learning_rate"] == config.learning_rate


def variance(xs: list[float]) -> float:
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def test_update_moves_probability_towards_positive_advantages():
    # One position, three legal labels in different planes (square 0 of planes 0, 1, 2), all
    # logits 0: pi = 1/3 each. Label 0 had advantage +1, label 81 advantage -1.
    model = controlled_model([0.0] * 27, value_bias=0.0)
    legal = [0, 81, 162]
    rollout = make_rollout(
        [legal, legal],
        actions=[0, 81],
        old_logprobs=[math.log(1 / 3)] * 2,
        advantages=[1.0, -1.0],
        returns=[0.0, 0.0],
        values=[0.0, 0.0],
    )
    config = PPOConfig(minibatch_size=2, update_epochs=4, learning_rate=1e-2)
    PPO(model, config, total_updates=1, device=torch.device("cpu")).update(rollout)

    with torch.no_grad():
        logits, _ = model(rollout.obs[:1].float())
    probs = torch.softmax(logits[0, legal], dim=-1).tolist()
    assert probs[0] > 1 / 3 > probs[1]
