"""The actor-critic network: a residual tower over the dlshogi planes, two heads.

The policy head is a 1x1 convolution to 27 planes of 9x9, flattened to the 2187 dlshogi labels
(label = move kind x 81 + square, the same order as the planes). The value head ends in tanh: the
expected result for the side to move, in [-1, 1]. There is no batch normalisation, so the network
computes the same function in train and eval mode (PPO's ratios start at exactly 1, and a resumed
run is bitwise the same run); each residual block's last convolution starts at zero instead.

`precision` (float32 by default; see `precision.py`) is what the network computes in wherever it
is called, so self-play, evaluation and the update agree. Only the stem and the tower use it: the
heads (a sliver of the work) compute in float32, so the logits and the value are float32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from keisei.model.precision import FLOAT32, Precision
from keisei.shogi import NUM_FEATURE_PLANES, NUM_LABELS

POLICY_PLANES = NUM_LABELS // 81


@dataclass(frozen=True)
class Architecture:
    """Everything needed to rebuild the network (stored in checkpoints)."""

    blocks: int = 2
    channels: int = 32
    squeeze_excitation: bool = False
    value_hidden: int = 64
    input_planes: int = NUM_FEATURE_PLANES
    type: str = "resnet-v1"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown architecture fields {unknown}")
        return cls(**known)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.down = nn.Linear(channels, max(channels // reduction, 1))
        self.up = nn.Linear(max(channels // reduction, 1), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.up(torch.relu(self.down(x.mean(dim=(2, 3))))))
        return x * scale[:, :, None, None]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, squeeze_excitation: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.se = SqueezeExcitation(channels) if squeeze_excitation else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.se(self.conv2(torch.relu(self.conv1(x)))))


class ActorCritic(nn.Module):
    """`forward(obs) -> (policy logits (B, 2187), value (B,))`; mask illegal labels yourself."""

    def __init__(
        self, architecture: Architecture | None = None, precision: Precision = FLOAT32
    ) -> None:
        super().__init__()
        arch = architecture or Architecture()
        self.architecture = arch
        self.precision = precision
        self.stem = nn.Conv2d(arch.input_planes, arch.channels, 3, padding=1)
        self.tower = nn.Sequential(
            *(ResidualBlock(arch.channels, arch.squeeze_excitation) for _ in range(arch.blocks))
        )
        self.policy_head = nn.Conv2d(arch.channels, POLICY_PLANES, 1)
        self.value_conv = nn.Conv2d(arch.channels, 1, 1)
        self.value_fc = nn.Linear(81, arch.value_hidden)
        self.value_out = nn.Linear(arch.value_hidden, 1)
        nn.init.normal_(self.policy_head.weight, std=0.01)
        nn.init.zeros_(self.policy_head.bias)
        nn.init.normal_(self.value_out.weight, std=0.01)
        nn.init.zeros_(self.value_out.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # channels_last input: faster convolutions on CPU in both precisions
        # (benchmarks/bench_network.py); the weights keep their layout, checkpoints too.
        obs = obs.contiguous(memory_format=torch.channels_last)
        with self.precision.autocast(obs.device):
            x = self.tower(torch.relu(self.stem(obs)))
        # The heads are a sliver of the work; in float32 the logits keep their resolution. In the
        # standard layout their 1x1 weights' gradients have the strides DDP's buckets expect.
        x = x.float().contiguous()
        logits = self.policy_head(x).flatten(1)
        v = torch.relu(self.value_fc(torch.relu(self.value_conv(x)).flatten(1)))
        return logits, torch.tanh(self.value_out(v)).squeeze(-1)


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Illegal labels get -inf, so they are never sampled and carry no probability."""
    return logits.masked_fill(~mask, float("-inf"))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
