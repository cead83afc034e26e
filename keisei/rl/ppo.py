"""The PPO update (Schulman et al., 2017), read top to bottom.

Losses as in the paper: the clipped surrogate L^CLIP, the value loss L^VF and the entropy bonus S;
the update minimises -L^CLIP + c1 L^VF - c2 S over minibatches for several epochs, with advantage
normalisation, gradient-norm clipping and Adam. Illegal labels are masked out of the policy in the
loss exactly as in sampling. Optional: a linear learning-rate decay and `torch.compile`. Mixed
precision is the network's own (`keisei.model.precision`: the tower in bf16 or fp16, its outputs
and everything here in float32), the same in the update as in the games; fp16 adds a gradient
scaler.

With several ranks (`world_size` > 1, a process group already joined) each rank updates on its
own rollout with `minibatch_size / world_size` samples per minibatch, so a minibatch is global.
What is all-reduced, and nothing else (as in CleanRL's multi-GPU PPO): the gradients (by
`DistributedDataParallel`, averaged), the advantage statistics of each minibatch (so they are
normalised with the global mean and standard deviation), the approximate KL that may stop an update
early (so every rank stops at the same epoch), and the reported statistics (averaged).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from keisei.config import PPOConfig
from keisei.model.network import ActorCritic, masked_logits
from keisei.rl.improved_policy import improved_policy_loss
from keisei.rl.rollout import Rollout

POLICY_TARGETS = ("improved", "improved+ppo")


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]; 1 is perfect, 0 no better than the mean."""
    variance = target.var()
    if variance.item() == 0:
        return float("nan")
    return float(1 - (target - predicted).var() / variance)


def normalized_advantages(
    advantages: torch.Tensor, world_size: int = 1, eps: float = 1e-8
) -> torch.Tensor:
    """Advantages shifted and scaled to mean 0 and (sample) standard deviation 1 over this
    minibatch, on every rank together when `world_size` > 1 (the statistics are all-reduced)."""
    moments = torch.stack(
        [advantages.sum(), advantages.pow(2).sum(), advantages.new_tensor(advantages.numel())]
    )
    if world_size > 1:
        dist.all_reduce(moments)
    total, squares, count = moments.unbind()
    if count.item() <= 1:
        return advantages
    mean = total / count
    variance = ((squares - total * mean) / (count - 1)).clamp(min=0.0)
    return (advantages - mean) / (variance.sqrt() + eps)


class PPOLosses(NamedTuple):
    """The terms of one minibatch's loss (scalars), and the per-sample probability ratios."""

    policy_loss: torch.Tensor
    """-L^CLIP: minus the mean clipped surrogate objective."""
    value_loss: torch.Tensor
    """L^VF = 0.5 * mean (V(s) - R)^2 (the value is not clipped)."""
    entropy: torch.Tensor
    """S: the mean entropy of the masked policy, over legal labels only."""
    ratio: torch.Tensor
    """r = pi(a|s) / pi_old(a|s), one per sample."""
    log_ratio: torch.Tensor
    """log r, one per sample."""


def ppo_losses(
    logits: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    actions: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    *,
    clip_coef: float,
    normalize_advantages: bool,
) -> PPOLosses:
    """The PPO loss terms of one minibatch, from the network's outputs on it.

    logits (B, 2187) and values (B,) are the network's outputs; mask (B, 2187) the legal labels;
    actions, old_logprobs, advantages, returns (B,) come from the rollout. With
    `normalize_advantages` (and more than one sample) the advantages are shifted and scaled to
    mean 0 and standard deviation 1 over this minibatch first.
    """
    if normalize_advantages:
        advantages = normalized_advantages(advantages)
    logp_all = torch.log_softmax(masked_logits(logits.float(), mask), dim=-1)
    logprobs = logp_all.gather(1, actions[:, None]).squeeze(-1)
    # Entropy over legal labels only (0 * -inf would be NaN).
    entropy = -(logp_all.exp() * logp_all.masked_fill(~mask, 0.0)).sum(-1).mean()

    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    surrogate = torch.min(
        ratio * advantages, ratio.clamp(1 - clip_coef, 1 + clip_coef) * advantages
    )
    policy_loss = -surrogate.mean()  # -L^CLIP
    value_loss = 0.5 * (values.float() - returns).pow(2).mean()  # L^VF
    return PPOLosses(policy_loss, value_loss, entropy, ratio, log_ratio)


class PPO:
    """Owns the optimizer, the learning-rate schedule and the AMP scaler of a training run."""

    def __init__(
        self,
        model: ActorCritic,
        config: PPOConfig,
        total_updates: int,
        device: torch.device,
        world_size: int = 1,
        minibatches: int | None = None,
        policy_target: str = "improved",
    ) -> None:
        if policy_target not in POLICY_TARGETS:
            raise ValueError(f"policy_target must be one of {POLICY_TARGETS}: {policy_target!r}")
        self.policy_target = policy_target
        """With a rollout of search-improved self-play (`Rollout.targets`): `improved` trains the
        policy by the cross-entropy to the improved policy alone, `improved+ppo` adds it to the
        surrogate (`improved_policy.py`)."""
        self.model = model
        self.config = config
        self.device = device
        self.world_size = world_size
        self.minibatch_size = config.minibatch_size // world_size
        """This rank's share of each (global) minibatch."""
        self.minibatches = minibatches
        """Minibatches per update epoch (`steps_per_epoch / minibatch_size`): fixed, so that every
        rank takes part in as many gradient all-reduces when a rollout holds fewer samples (a
        past opponent's moves are left out). None: as many whole minibatches as fit."""
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-5)
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        if config.lr_schedule == "linear":
            total = max(total_updates, 1)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda update: max(0.0, 1.0 - update / total)
            )
        fp16 = model.precision.dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None
        trained: nn.Module = model
        if world_size > 1:  # broadcasts rank 0's weights now; averages gradients in backward
            device_ids = [device.index] if device.type == "cuda" else None
            trained = DistributedDataParallel(model, device_ids=device_ids)
        self.forward = torch.compile(trained) if config.compile else trained

    def _mean_over_ranks(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return (tensor / self.world_size).tolist()

    @property
    def learning_rate(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def update(
        self, rollout: Rollout, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """Run the PPO epochs over `rollout`; return the update's statistics."""
        cfg = self.config
        size = len(rollout)
        sums = dict.fromkeys(
            (
                "policy_loss",
                "value_loss",
                "entropy",
                "approx_kl",
                "clip_fraction",
                "grad_norm",
                "improved_cross_entropy",
            ),
            0.0,
        )
        minibatches = 0
        count = self.minibatches or max(size // self.minibatch_size, 1)
        length = max(min(size // count, self.minibatch_size), 1)
        learning_rate = self.learning_rate
        self.model.train()
        for _epoch in range(cfg.update_epochs):
            order = torch.randperm(size, device=self.device, generator=generator)
            epoch_kl = 0.0
            epoch_batches = 0
            for start in range(0, count * length, length):
                index = order[start : start + length]
                stats = self._minibatch_step(rollout, index)
                for key, value in stats.items():
                    sums[key] += value
                minibatches += 1
                epoch_kl += stats["approx_kl"]
                epoch_batches += 1
            if cfg.target_kl is not None:
                (mean_kl,) = self._mean_over_ranks([epoch_kl / max(epoch_batches, 1)])
                if mean_kl > cfg.target_kl:
                    break
        if self.scheduler is not None:
            self.scheduler.step()
        if rollout.targets is None:
            del sums["improved_cross_entropy"]
        stats = {f"ppo/{key}": value / max(minibatches, 1) for key, value in sums.items()}
        stats["ppo/explained_variance"] = explained_variance(rollout.values, rollout.returns)
        averaged = self._mean_over_ranks(list(stats.values()))
        out = dict(zip(stats, averaged, strict=True))
        out["ppo/learning_rate"] = learning_rate
        return out

    def _minibatch_step(self, rollout: Rollout, index: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        obs = rollout.obs[index].float()
        mask = rollout.masks[index]
        actions = rollout.actions[index]
        old_logprobs = rollout.logprobs[index]
        advantages = rollout.advantages[index]
        if cfg.normalize_advantages:
            advantages = normalized_advantages(advantages, self.world_size)
        returns = rollout.returns[index]
        targets = None if rollout.targets is None else rollout.targets[index]

        logits, values = self.forward(obs)
        policy_loss, value_loss, entropy, ratio, log_ratio = ppo_losses(
            logits,
            values,
            mask,
            actions,
            old_logprobs,
            advantages,
            returns,
            clip_coef=cfg.clip_coef,
            normalize_advantages=False,  # done above, over every rank's share
        )
        improved = 0.0
        if targets is not None:
            cross_entropy = improved_policy_loss(logits, mask, targets)
            improved = cross_entropy.item()
            if self.policy_target == "improved":
                policy_loss = cross_entropy
            else:
                policy_loss = policy_loss + cross_entropy
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy

        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()  # the low-variance k3 estimator
            clip_fraction = ((ratio - 1).abs() > cfg.clip_coef).float().mean()
        return {
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": entropy.item(),
            "approx_kl": approx_kl.item(),
            "clip_fraction": clip_fraction.item(),
            "grad_norm": float(grad_norm),
            "improved_cross_entropy": improved,
        }
