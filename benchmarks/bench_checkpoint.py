"""How long an asynchronous checkpoint save blocks the training loop, against a synchronous save.

Model: about 50 MB of float32 parameters (an MLP of 2048-wide layers) plus its Adam state (two
more tensors per parameter), about 150 MB per checkpoint. Both stores write to the same disk in
the same run; saves alternate sync/async so both see the same disk and page-cache conditions,
with `--gap` seconds of training steps between saves (as in a real run, where saves are minutes
apart; without a gap each save also pays for the kernel's writeback of the one before). The
training steps taken while the asynchronous write is in flight are counted too, to show the
loop keeps running. The first save of each store (cold buffers) is reported separately.

Target: the blocked time of an asynchronous save is at most 10% of a synchronous save.

    .venv/bin/python benchmarks/bench_checkpoint.py [--dir DIR] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from keisei.checkpoint import CheckpointStore, TrainingState

TARGET = 0.10


def build(device: str, width: int, layers: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(width, width) for _ in range(layers)]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.randn(8, width, device=device)).square().mean().backward()
    optimizer.step()
    return model, optimizer


def state(step: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainingState:
    return TrainingState(
        step=step,
        model=model,
        optimizer=optimizer,
        counters={"episodes": step},
        architecture={"type": "mlp"},
    )


class Trainer:
    """A stand-in training loop: real forward/backward/Adam steps on the benchmarked model."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: str) -> None:
        self.model, self.optimizer = model, optimizer
        width = next(model.parameters()).shape[-1]
        self.batch = torch.randn(32, width, device=device)

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.model(self.batch).square().mean().backward()
        self.optimizer.step()

    def train_for(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.step()


def timed_save(
    store: CheckpointStore, training_state: TrainingState, trainer: Trainer
) -> tuple[float, float, int]:
    """(seconds the loop was blocked, seconds until on disk, training steps taken meanwhile)."""
    start = time.perf_counter()
    store.save(training_state)
    blocked = time.perf_counter() - start
    steps = 0
    while store.pending is not None:
        trainer.step()
        steps += 1
    store.flush()
    return blocked, time.perf_counter() - start, steps


def summary(values: list[float]) -> str:
    ms = [v * 1e3 for v in values]
    return f"median {statistics.median(ms):8.1f} ms  (min {min(ms):7.1f}, max {max(ms):7.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds of training between saves")
    args = parser.parse_args()

    model, optimizer = build(args.device, args.width, args.layers)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    adam = sum(
        t.numel() * t.element_size()
        for s in optimizer.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor)
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        sync_store = CheckpointStore(Path(root) / "sync", keep_last=2, async_save=False)
        async_store = CheckpointStore(Path(root) / "async", keep_last=2, async_save=True)
        print(f"device {args.device}; torch {torch.__version__}; writing under {root}")
        print(f"parameters {params / 1e6:.1f} MB + Adam state {adam / 1e6:.1f} MB")
        trainer = Trainer(model, optimizer, args.device)
        trainer.train_for(args.gap)
        cold_sync = timed_save(sync_store, state(0, model, optimizer), trainer)
        trainer.train_for(args.gap)
        cold_async = timed_save(async_store, state(0, model, optimizer), trainer)
        sync_times, blocked, async_total, overlapped = [], [], [], []
        for step in range(1, args.repeats + 1):
            trainer.train_for(args.gap)
            sync_times.append(timed_save(sync_store, state(step, model, optimizer), trainer)[1])
            trainer.train_for(args.gap)
            b, total, steps = timed_save(async_store, state(step, model, optimizer), trainer)
            blocked.append(b)
            async_total.append(total)
            overlapped.append(steps)
        sync_store.close()
        async_store.close()
    ratio = statistics.median(blocked) / statistics.median(sync_times)
    print(
        f"first save (cold): sync {cold_sync[1] * 1e3:.1f} ms; async blocked "
        f"{cold_async[0] * 1e3:.1f} ms, on disk after {cold_async[1] * 1e3:.1f} ms"
    )
    print(f"{args.repeats} saves each, alternating:")
    print(f"  synchronous save (baseline)  {summary(sync_times)}")
    print(f"  async save, loop blocked     {summary(blocked)}")
    print(f"  async save, until on disk    {summary(async_total)}")
    print(f"  training steps taken while the async write ran: {overlapped}")
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"blocked / synchronous = {ratio:.1%} (target <= {TARGET:.0%}): {verdict}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
