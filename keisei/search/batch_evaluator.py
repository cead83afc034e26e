"""Batched network evaluation for the search: priors over each position's legal moves, and values.

The search writes observations straight into this object's batch buffer (`slot(i)`), then asks for
one forward pass over the first n rows. Only the legal labels' logits are gathered and turned into
probabilities, all positions at once, so the cost per position stays close to the plain forward
pass (`benchmarks/bench_search.py` measures how close).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from keisei.shogi import NUM_LABELS, OBS_SHAPE, ShogiGame

MAX_LEGAL_MOVES = 600
"""More than any Shogi position has (593 is the known maximum)."""


class BatchEvaluator:
    """Evaluates up to `capacity` positions per call on `device`; counts positions and seconds."""

    def __init__(self, model: torch.nn.Module, capacity: int, device: torch.device | str) -> None:
        if capacity < 1:
            raise ValueError(f"batch capacity must be at least 1, not {capacity}")
        self.model = model
        self.device = torch.device(device)
        self._accelerated = self.device.type != "cpu"
        pin = self.device.type == "cuda"
        self._obs_tensor = torch.zeros((capacity, *OBS_SHAPE), dtype=torch.float32, pin_memory=pin)
        self._obs = self._obs_tensor.numpy()
        self._index_tensor = torch.zeros(
            capacity * MAX_LEGAL_MOVES, dtype=torch.int64, pin_memory=pin
        )
        self._index = self._index_tensor.numpy()
        self.positions = 0
        self.calls = 0
        self.seconds = 0.0

    @property
    def capacity(self) -> int:
        return int(self._obs.shape[0])

    def slot(self, index: int) -> np.ndarray:
        """The observation buffer row `index` (write a position's planes into it)."""
        return self._obs[index]

    def evaluate(self, labels: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        """Run the network on the first `len(labels)` slots; `labels[i]` are the legal labels of
        slot i. Returns (priors, one float32 array per slot, aligned with its labels; values in
        [-1, 1] for the side to move, float32 of shape (n,))."""
        count = len(labels)
        if not 0 < count <= self.capacity:
            raise ValueError(f"can evaluate 1..{self.capacity} positions at once, not {count}")
        sizes = np.fromiter((len(row) for row in labels), dtype=np.intp, count=count)
        if not sizes.all():
            raise ValueError("every evaluated position needs at least one legal move")
        started = time.perf_counter()
        total = int(sizes.sum())
        index = self._index[:total]
        np.concatenate(labels, out=index)
        index += np.repeat(np.arange(count, dtype=np.int64) * NUM_LABELS, sizes)
        with torch.inference_mode():
            if self._accelerated:
                # One batch shape (the capacity) for the accelerator's kernels, and only the
                # legal moves' logits come back to the host.
                batch = self._obs_tensor.to(self.device, non_blocking=True)
                logits, values = self.model(batch)
                on_device = self._index_tensor[:total].to(self.device, non_blocking=True)
                legal = logits.reshape(-1)[on_device].float().cpu().numpy()
                values_np = values[:count].float().cpu().numpy()
            else:
                logits, values = self.model(self._obs_tensor[:count])
                legal = logits.reshape(-1).numpy()[index]
                values_np = values.numpy()
        starts = np.zeros(count, dtype=np.intp)
        np.cumsum(sizes[:-1], out=starts[1:])
        legal -= np.repeat(np.maximum.reduceat(legal, starts), sizes)
        np.exp(legal, out=legal)
        legal /= np.repeat(np.add.reduceat(legal, starts), sizes)
        priors = np.split(legal, starts[1:])
        self.seconds += time.perf_counter() - started
        self.positions += count
        self.calls += 1
        return priors, values_np

    def evaluate_games(self, games: Sequence[ShogiGame]) -> tuple[list[np.ndarray], np.ndarray]:
        """Convenience for a few whole games (not over): fill the slots, then `evaluate`."""
        for index, game in enumerate(games):
            game.observation(self.slot(index))
        return self.evaluate([game.legal_labels() for game in games])
