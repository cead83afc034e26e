"""One rank of a 2-rank PPO update on a fixed rollout (`python -m tests.support.ppo_rank OUT`,
with the torch.distributed environment set): each rank updates on its half; the weights go to
`OUT/rank<r>.safetensors`. `fixed_rollout` and `fresh_model` are shared with the test, which
updates one process on the whole rollout."""

from __future__ import annotations

import gc
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from keisei.config import PPOConfig
from keisei.model import ActorCritic, Architecture
from keisei.model.network import masked_logits
from keisei.rl.ppo import PPO
from keisei.rl.rollout import Rollout
from keisei.shogi import NUM_LABELS, OBS_SHAPE
from keisei.training.distributed import bind_no_group_at_import

SAMPLES = 64
CONFIG = PPOConfig(minibatch_size=SAMPLES, update_epochs=3, learning_rate=1e-3)


def fresh_model() -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(Architecture(blocks=1, channels=8, value_hidden=8))


def fixed_rollout() -> Rollout:
    generator = torch.Generator().manual_seed(7)
    obs = (torch.rand(SAMPLES, *OBS_SHAPE, generator=generator) < 0.1).to(torch.uint8)
    masks = torch.rand(SAMPLES, NUM_LABELS, generator=generator) < 0.05
    masks[:, 0] = True
    with torch.no_grad():
        logits, values = fresh_model()(obs.float())
        logp = torch.log_softmax(masked_logits(logits, masks), dim=-1)
        actions = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
    advantages = torch.randn(SAMPLES, generator=generator)
    return Rollout(
        obs=obs,
        masks=masks,
        actions=actions,
        logprobs=logp.gather(1, actions[:, None]).squeeze(-1),
        values=values,
        advantages=advantages,
        returns=values + advantages,
        games_finished=0,
    )


def half(rollout: Rollout, rank: int) -> Rollout:
    size = len(rollout) // 2
    part = slice(rank * size, (rank + 1) * size)
    fields = ("obs", "masks", "actions", "logprobs", "values", "advantages", "returns")
    return Rollout(**{name: getattr(rollout, name)[part] for name in fields}, games_finished=0)


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    bind_no_group_at_import()
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    model = fresh_model()
    ppo = PPO(model, CONFIG, total_updates=1, device=torch.device("cpu"), world_size=2)
    ppo.update(half(fixed_rollout(), rank))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / f"rank{rank}.safetensors"))  # fmt: skip
    del ppo, model
    dist.destroy_process_group()
    gc.collect()  # free the group now, not in the interpreter's finalization (see World.close)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
