"""Whole-loop training throughput, where the wall time goes, and float32 against bf16.

Runs the real trainer (periodic evaluation off, so that only training is timed) and splits the
wall time into: game stepping (`env`), batched inference (`inference`: forward pass and sampling),
rollout buffer and GAE (`buffer`), the PPO update (`ppo`: forward, backward, optimizer),
callbacks (`callbacks`) and the rest (`other`). The network's work is `inference` + `ppo`; the
target is that everything else takes at most 20% of wall time at the default config.

Steps/s is measured from the end of the first epoch (warm-up) to the end of the last. With
`--compare-precision` every size runs in float32 (`ppo.amp=off`) and in bf16, taking turns
`--repeats` times (a busy machine slows both alike), and the medians and their ratio are printed.
The update's achieved FLOP/s (counted by `torch.utils.flop_counter` on one minibatch) is printed
too, and on CUDA its share of the device's peak (MFU; `--peak-tflops` for a device not listed).

    .venv/bin/python benchmarks/bench_train.py                       # the default config
    .venv/bin/python benchmarks/bench_train.py --compare-precision --sizes 2x32 6x128se
    .venv/bin/python benchmarks/bench_train.py --sizes 2x32 4x64 6x128se 10x128se --set ppo.amp=bf16
    .venv/bin/python benchmarks/bench_train.py --device cuda --compare-precision
"""

from __future__ import annotations

import keisei  # noqa: F401  (first: it sets OpenMP's wait policy before torch loads, as `keisei` does)

# isort: split

import argparse
import logging
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from keisei.model import ActorCritic, Architecture
from keisei.shogi import NUM_LABELS, OBS_SHAPE
from keisei.training.callbacks import Callback, TrainerView
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer

SECTIONS = ("env", "inference", "buffer", "ppo", "callbacks", "other")
PEAK_TFLOPS = {  # dense bf16 / fp16 tensor-core peak, and float32 (TF32 where it applies)
    "H200": (989.0, 494.0),
    "H100": (989.0, 494.0),
    "A100": (312.0, 156.0),
    "L40S": (362.0, 183.0),
    "L4": (121.0, 60.0),
    "A10": (125.0, 62.5),
    "RTX 4090": (165.0, 82.6),
}


class EpochClock(Callback):
    """Notes when each epoch ended."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[int, float]] = []

    def on_step_end(self, trainer: TrainerView) -> None:
        self.marks.append((trainer.global_timestep, time.perf_counter()))


@dataclass
class Measurement:
    steps_per_second: float
    shares: dict[str, float]
    precision: str
    update_flops: float
    """FLOP/s of the PPO update (forward + backward, counted), over the `ppo` section."""


def size_overrides(size: str) -> list[str]:
    """`6x128se` -> 6 blocks of 128 channels with squeeze-excitation (the config's other model
    settings unchanged)."""
    body = size.lower().removesuffix("se")
    blocks, channels = body.split("x")
    se = "true" if size.lower().endswith("se") else "false"
    return [
        f"model.blocks={blocks}",
        f"model.channels={channels}",
        f"model.squeeze_excitation={se}",
    ]


def update_flops_per_sample(trainer: Trainer) -> float:
    """FLOPs of one sample's forward and backward pass in the update, counted on a minibatch."""
    arch: Architecture = trainer.architecture
    model = ActorCritic(arch, trainer.precision).to(trainer.device)
    batch = 64
    obs = torch.zeros((batch, *OBS_SHAPE), device=trainer.device)
    with FlopCounterMode(display=False) as counter:
        logits, values = model(obs)
        (logits[:, : NUM_LABELS // 2].mean() + values.mean()).backward()
    return counter.get_total_flops() / batch


def measure(overrides: list[str], epochs: int, root: str) -> Measurement:
    probe = plan_run(None, overrides, "probe", None).config
    steps = probe.training.steps_per_epoch * (epochs + 1)
    trainer = Trainer(
        plan_run(
            None,
            [
                *overrides,
                f"logging.model_dir={root}",
                f"training.total_timesteps={steps}",
                "evaluation.enable_periodic_evaluation=false",
                "logging.tensorboard=false",
                "logging.level=WARNING",
            ],
            None,
            None,
        )
    )
    clock = EpochClock()
    trainer.manager.add_callback(clock)
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    (first_step, first_time), (last_step, last_time) = clock.marks[0], clock.marks[-1]
    sections = dict(trainer.timer.seconds)
    sections["other"] = max(wall - sum(sections.values()), 0.0)
    shares = {name: sections.get(name, 0.0) / wall for name in SECTIONS}
    samples = steps * probe.ppo.update_epochs  # each position passes update_epochs times
    flops = update_flops_per_sample(trainer) * samples / max(sections.get("ppo", 0.0), 1e-9)
    return Measurement(
        (last_step - first_step) / (last_time - first_time),
        shares,
        trainer.precision.name,
        flops,
    )


def peak_flops(device: str, precision: str, given: float | None) -> float | None:
    if given is not None:
        return given * 1e12
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    for key, (low, f32) in PEAK_TFLOPS.items():
        if key in name:
            return (f32 if precision == "float32" else low) * 1e12
    return None


def report(label: str, runs: list[Measurement], peak: float | None) -> float:
    rate = statistics.median(m.steps_per_second for m in runs)
    shares = {s: statistics.median(m.shares[s] for m in runs) for s in SECTIONS}
    flops = statistics.median(m.update_flops for m in runs)
    split = "  ".join(f"{s} {shares[s]:5.1%}" for s in SECTIONS)
    mfu = f", MFU {flops / peak:.1%}" if peak else ""
    outside = 1 - shares["inference"] - shares["ppo"]
    print(
        f"  {label:<16}{rate:>9,.0f} steps/s   {split}   not network {outside:5.1%}   "
        f"update {flops / 1e9:,.1f} GFLOP/s{mfu}"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs after the warm-up")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case (medians)")
    parser.add_argument("--sizes", nargs="+", default=[], help="e.g. 2x32 6x128se")
    parser.add_argument("--compare-precision", action="store_true")
    parser.add_argument("--device", default=None, help="training.device (default: the config's)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    if args.compare_precision and args.repeats == 1:
        args.repeats = 3
    logging.getLogger("keisei").setLevel(logging.WARNING)
    base = list(args.overrides)
    if args.device:
        base.append(f"training.device={args.device}")
    device = plan_run(None, base, "probe", None).config.training.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    precisions = ["off", "bf16"] if args.compare_precision else [None]
    sizes = args.sizes or [None]
    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
        f"{args.epochs} timed epochs a run, medians of {args.repeats}"
    )
    with tempfile.TemporaryDirectory() as root:
        for size in sizes:
            overrides = [*base, *(size_overrides(size) if size else [])]
            runs: dict[str | None, list[Measurement]] = {p: [] for p in precisions}
            for _ in range(args.repeats):
                for precision in precisions:
                    extra = [f"ppo.amp={precision}"] if precision else []
                    runs[precision].append(measure([*overrides, *extra], args.epochs, root))
            print(f"\n{size or 'config'}:")
            rates = {}
            for precision, measured in runs.items():
                name = measured[0].precision
                peak = peak_flops(device, name, args.peak_tflops)
                rates[precision] = report(name, measured, peak)
            if args.compare_precision:
                per_run = [
                    b.steps_per_second / f.steps_per_second
                    for f, b in zip(runs["off"], runs["bf16"], strict=True)
                ]
                print(
                    f"  bf16 / float32: {rates['bf16'] / rates['off']:.2f}x (per pair "
                    f"{min(per_run):.2f}..{max(per_run):.2f}x)"
                )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
