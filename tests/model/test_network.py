"""The actor-critic network: shapes, the label layout of the policy head, the value range,
masking, train/eval equivalence, zero-initialised residual blocks and the architecture record."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from keisei.model.network import (
    ActorCritic,
    Architecture,
    ResidualBlock,
    masked_logits,
    parameter_count,
)
from keisei.shogi import NUM_LABELS, OBS_SHAPE, ShogiGame

TINY = Architecture(blocks=1, channels=4, value_hidden=4)


def tiny_model(seed: int = 0, architecture: Architecture = TINY) -> ActorCritic:
    torch.manual_seed(seed)
    return ActorCritic(architecture)


def random_obs(batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (batch, *OBS_SHAPE), generator=generator).float()


def test_outputs_one_logit_per_label_and_one_value_per_position():
    logits, values = tiny_model()(random_obs(3))
    assert logits.shape == (3, 2187) == (3, NUM_LABELS)
    assert values.shape == (3,)


def test_label_is_plane_times_81_plus_square():
    model = tiny_model()
    with torch.no_grad():
        model.policy_head.weight.zero_()
        model.policy_head.bias.copy_(torch.arange(27, dtype=torch.float32))
    logits, _ = model(random_obs(1))
    # With zero weights, plane p holds the constant p on all 81 squares.
    assert logits[0].tolist() == [float(label // 81) for label in range(2187)]


def test_square_s_of_a_label_is_cell_s_div_9_s_mod_9_of_the_input_planes():
    model = tiny_model()
    with torch.no_grad():
        # Each channel copies input plane 0 at the same cell (centre tap only); the residual
        # block's last convolution starts at zero, so the tower passes it through; the policy
        # head sums the channels into every plane.
        model.stem.weight.zero_()
        model.stem.weight[:, 0, 1, 1] = 1.0
        model.stem.bias.zero_()
        model.policy_head.weight.fill_(1.0)
        model.policy_head.bias.zero_()
        obs = torch.zeros(1, *OBS_SHAPE)
        obs[0, 0, 2, 5] = 1.0  # cell (2, 5): square 2 * 9 + 5 = 23
        logits, _ = model(obs)
    assert torch.nonzero(logits[0]).flatten().tolist() == [p * 81 + 23 for p in range(27)]


def test_values_lie_in_minus_one_to_one():
    model = tiny_model(seed=3)
    with torch.no_grad():
        model.value_out.weight.mul_(1e4)  # saturate the value head both ways
        model.value_out.bias.zero_()
    _, values = model(random_obs(16, seed=1) * 50)
    assert bool((values.abs() <= 1).all())
    assert values.abs().max().item() > 0.5


def test_illegal_labels_get_exactly_zero_probability():
    game = ShogiGame("startpos")
    obs = torch.from_numpy(game.observation())[None]
    mask = torch.from_numpy(game.legal_mask())[None]
    with torch.no_grad():
        logits, _ = tiny_model()(obs)
    logits = logits.masked_fill(~mask, 50.0)  # illegal logits far above the legal ones
    probs = torch.softmax(masked_logits(logits, mask), dim=-1)[0]

    legal = np.flatnonzero(game.legal_mask())
    assert len(legal) == 30
    assert bool((probs[~mask[0]] == 0).all())
    # Over the legal labels: exp(l_a) / sum_j exp(l_j), worked out in float64 from the logits.
    legal_logits = logits[0, legal].double().tolist()
    total = sum(math.exp(x) for x in legal_logits)
    expected = [math.exp(x) / total for x in legal_logits]
    assert probs[legal].tolist() == pytest.approx(expected, rel=1e-5)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_masked_logits_keep_legal_logits_and_set_illegal_ones_to_minus_infinity():
    logits = torch.tensor([[1.5, -2.0, 7.0, 0.0]])
    mask = torch.tensor([[True, False, True, False]])
    assert masked_logits(logits, mask).tolist() == [[1.5, -math.inf, 7.0, -math.inf]]
    assert logits.tolist() == [[1.5, -2.0, 7.0, 0.0]]  # the input is left alone


def test_train_and_eval_mode_compute_the_same_function():
    model = tiny_model(seed=5, architecture=Architecture(blocks=2, channels=4, value_hidden=4))
    # Make the residual branches non-trivial (they start at zero).
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    obs = random_obs(4)
    model.train()
    train_logits, train_values = model(obs)
    model.eval()
    eval_logits, eval_values = model(obs)
    assert torch.equal(train_logits, eval_logits)
    assert torch.equal(train_values, eval_values)


@pytest.mark.parametrize("squeeze_excitation", [False, True])
def test_a_fresh_residual_block_passes_non_negative_input_through(squeeze_excitation: bool):
    torch.manual_seed(0)
    block = ResidualBlock(4, squeeze_excitation)
    x = torch.rand(2, 4, 9, 9)  # non-negative, like the ReLU output that feeds each block
    assert torch.equal(block(x), x)


def test_architecture_round_trips_through_a_dict():
    architecture = Architecture(blocks=3, channels=16, squeeze_excitation=True, value_hidden=8)
    assert Architecture.from_dict(architecture.to_dict()) == architecture
    rebuilt = ActorCritic(Architecture.from_dict(architecture.to_dict()))
    assert rebuilt.architecture == architecture


def test_unknown_architecture_fields_are_named():
    data = {**TINY.to_dict(), "heads": 2, "dropout": 0.1}
    with pytest.raises(ValueError, match=r"\['dropout', 'heads'\]"):
        Architecture.from_dict(data)


@pytest.mark.parametrize(("squeeze_excitation", "expected"), [(False, 2554), (True, 2561)])
def test_parameter_count(squeeze_excitation: bool, expected: int):
    # blocks=1, channels=2, value_hidden=3, 119 input planes, counted by hand:
    #   stem 3x3 conv 119 -> 2:        119*2*9 + 2 = 2144
    #   block, two 3x3 convs 2 -> 2:   2 * (2*2*9 + 2) = 76
    #   policy head 1x1 conv 2 -> 27:  2*27 + 27 = 81
    #   value conv 1x1 2 -> 1:         2 + 1 = 3
    #   value fc 81 -> 3:              81*3 + 3 = 246
    #   value out 3 -> 1:              3 + 1 = 4           total 2554
    #   squeeze-excitation 2 -> 1 -> 2: (2 + 1) + (2 + 2) = 7 more
    architecture = Architecture(
        blocks=1, channels=2, value_hidden=3, squeeze_excitation=squeeze_excitation
    )
    assert architecture.input_planes == 119
    assert parameter_count(ActorCritic(architecture)) == expected
