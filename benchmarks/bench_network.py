"""The network alone: what pays on this machine for the PPO update and for batched inference.

For each network size, each variant is timed in the same run, taking turns trial by trial (a busy
machine slows all alike), and reported as the median time and its ratio to the float32 baseline:

* update: one PPO-sized step at `--batch` (forward in train mode, a float32 loss on the outputs,
  backward, Adam), as `keisei.rl.ppo` does it;
* inference: one forward pass under `torch.inference_mode()` at `--infer-batch` positions (the
  self-play batch, `env.num_envs`), as the rollouts and evaluation do it.

Variants: float32 (the baseline), bf16 autocast (`keisei.model.precision`, the tower in bf16),
each also with the model's weights in `channels_last` memory format (the network always feeds
its input channels_last), bf16 inference under `no_grad` instead of `inference_mode`, and with
`--compile` under `torch.compile`; and `--threads` torch thread counts (the update and inference
may want different ones).

Run: `.venv/bin/python benchmarks/bench_network.py [--sizes 2x32 6x128se] [--threads 1 2]
[--compile] [--trials 7]`
"""

from __future__ import annotations

import keisei  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads, as `keisei` does)

# isort: split

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from keisei.model import ActorCritic, Architecture, Precision
from keisei.model.precision import FLOAT32
from keisei.shogi import OBS_SHAPE

BF16 = Precision(torch.bfloat16, "benchmark")


def parse_size(text: str) -> Architecture:
    """`6x128se` -> 6 blocks of 128 channels with squeeze-excitation."""
    body = text.lower().removesuffix("se")
    blocks, channels = (int(part) for part in body.split("x"))
    return Architecture(blocks=blocks, channels=channels, squeeze_excitation=text.endswith("se"))


@dataclass(frozen=True)
class Variant:
    name: str
    precision: Precision
    channels_last: bool = False
    compiled: bool = False
    no_grad: bool = False
    """Inference under `torch.no_grad()` instead of `torch.inference_mode()`."""


def build(arch: Architecture, variant: Variant) -> tuple[ActorCritic, Callable[..., object]]:
    torch.manual_seed(0)
    model = ActorCritic(arch, variant.precision)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward: Callable[..., object] = torch.compile(model) if variant.compiled else model
    return model, forward


def batch(size: int, channels_last: bool) -> torch.Tensor:
    obs = (torch.rand(size, *OBS_SHAPE) < 0.1).float()
    return obs.contiguous(memory_format=torch.channels_last) if channels_last else obs


def update_seconds(model: ActorCritic, forward: Callable[..., object], obs: torch.Tensor) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    start = time.perf_counter()
    logits, values = forward(obs)  # type: ignore[misc]
    loss = torch.log_softmax(logits, dim=-1)[:, 0].mean() + values.pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def inference_seconds(
    forward: Callable[..., object], obs: torch.Tensor, repeats: int, no_grad: bool = False
) -> float:
    start = time.perf_counter()
    with torch.no_grad() if no_grad else torch.inference_mode():
        for _ in range(repeats):
            forward(obs)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["2x32", "6x128se"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch", type=int, default=256, help="update minibatch")
    parser.add_argument("--infer-batch", type=int, default=32, help="inference batch")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args()

    variants = [
        Variant("float32", FLOAT32),
        Variant("bf16", BF16),
        Variant("float32 channels_last", FLOAT32, channels_last=True),
        Variant("bf16 channels_last", BF16, channels_last=True),
        Variant("bf16 no_grad (not inference_mode)", BF16, no_grad=True),
    ]
    if args.compile:
        variants += [Variant("float32 compiled", FLOAT32, compiled=True)]
        variants += [Variant("bf16 compiled", BF16, compiled=True)]
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    for size in args.sizes:
        arch = parse_size(size)
        for threads in args.threads:
            torch.set_num_threads(threads)
            built = {v.name: build(arch, v) for v in variants}
            update: dict[str, list[float]] = {v.name: [] for v in variants}
            infer: dict[str, list[float]] = {v.name: [] for v in variants}
            for v in variants:  # warm-up (and compilation)
                model, forward = built[v.name]
                update_seconds(model, forward, batch(args.batch, v.channels_last))
                inference_seconds(forward, batch(args.infer_batch, v.channels_last), 2)
            for _ in range(args.trials):
                for v in variants:
                    model, forward = built[v.name]
                    obs = batch(args.batch, v.channels_last)
                    update[v.name].append(update_seconds(model, forward, obs))
                    small = batch(args.infer_batch, v.channels_last)
                    infer[v.name].append(inference_seconds(forward, small, 5, v.no_grad))
            print(f"\n{size}, {threads} thread(s), medians of {args.trials} trials")
            print(
                f"  {'variant':<36}{'update ms':>11}{'vs f32':>8}"
                f"{'infer ms':>11}{'vs f32':>8}{'positions/s':>13}"
            )
            base_u = statistics.median(update["float32"])
            base_i = statistics.median(infer["float32"])
            for v in variants:
                u, i = statistics.median(update[v.name]), statistics.median(infer[v.name])
                print(
                    f"  {v.name:<36}{u * 1e3:>11.1f}{base_u / u:>7.2f}x"
                    f"{i * 1e3:>11.2f}{base_i / i:>7.2f}x{args.infer_batch / i:>13,.0f}"
                )


if __name__ == "__main__":
    main()
