"""A small, real implementation of what callbacks see of a trainer, for tests.

`MiniTrainer` satisfies `TrainerView` with a tiny torch model and optimizer, a metrics recorder
writing a real `metrics.jsonl`, a `FileSaver` that really writes checkpoints to disk, and a
`ProcessEvaluator` that really plays its "games" in another process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from keisei.evaluation.result import EloSnapshot, EvaluationResult, GameResult
from keisei.log import JsonlSink, MetricsRecorder, get_logger, read_metrics
from keisei.training.callback_manager import CallbackManager

PROBE = torch.linspace(-1.0, 1.0, 16).reshape(4, 4)


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def play_games(
    state: dict[str, torch.Tensor], step: int, games: int, delay_s: float
) -> EvaluationResult:
    """Worker-side evaluation: rebuild the model and score it on fixed probes (one per game)."""
    time.sleep(delay_s)
    model = tiny_model()
    model.load_state_dict(state)
    with torch.inference_mode():
        scores = model(PROBE.repeat(games // 4 + 1, 1)[:games]).flatten().tolist()
    results = [
        GameResult(
            opponent="probe",
            agent_color="black" if i % 2 == 0 else "white",
            outcome="win" if score > 0.05 else "loss" if score < -0.05 else "draw",
            reason="probe",
            plies=10 + i,
        )
        for i, score in enumerate(scores)
    ]
    wins = sum(r.outcome == "win" for r in results)
    elo = EloSnapshot(rating=100.0 * wins, opponent="probe", last_outcome=results[-1].outcome)
    return EvaluationResult(step=step, games=results, elo=elo, worker_pid=os.getpid())


class ProcessEvaluator:
    """Evaluates in-process, or in a spawned worker process on a snapshot of the weights."""

    def __init__(self, games: int = 4, delay_s: float = 0.0) -> None:
        self.games = games
        self.delay_s = delay_s
        self.sync_calls: list[tuple[int, bool]] = []
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def evaluate_current_agent(self, agent: torch.nn.Module, step: int) -> EvaluationResult:
        self.sync_calls.append((step, agent.training))
        state = {k: v.detach().clone() for k, v in agent.state_dict().items()}
        return play_games(state, step, self.games, 0.0)

    def evaluate_current_agent_async(
        self, agent: torch.nn.Module, step: int
    ) -> Future[EvaluationResult]:
        state = {k: v.detach().cpu().clone() for k, v in agent.state_dict().items()}
        return self._pool.submit(play_games, state, step, self.games, self.delay_s)

    def close(self) -> None:
        for process in list(getattr(self._pool, "_processes", {}).values()):
            process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


class FileSaver:
    """Writes the model weights (safetensors) and the callbacks' state (JSON) per checkpoint."""

    def __init__(self, directory: Path, trainer: MiniTrainer) -> None:
        self.directory = directory
        self.trainer = trainer
        self.saved_steps: list[int] = []

    def save(self, step: int, *, wait: bool = False) -> Path:
        path = self.directory / f"step_{step:09d}"
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.trainer.model.state_dict(), str(path / "model.safetensors"))
        manifest = {
            "step": step,
            "callbacks": self.trainer.manager.state_dict(),
            "final": wait,
        }
        (path / "manifest.json").write_text(json.dumps(manifest))
        self.saved_steps.append(step)
        return path

    @staticmethod
    def load(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
        return load_file(str(path / "model.safetensors")), json.loads(
            (path / "manifest.json").read_text()
        )


@dataclass
class MiniTrainer:
    """A real, minimal `TrainerView` plus a training step, driven by tests."""

    run_dir: Path
    manager: CallbackManager
    steps_per_epoch: int
    model: torch.nn.Module = field(default_factory=tiny_model)
    evaluator: ProcessEvaluator | None = None
    global_timestep: int = 0
    total_episodes_completed: int = 0
    black_wins: int = 0
    white_wins: int = 0
    draws: int = 0
    logger: logging.Logger = field(default_factory=lambda: get_logger("test-trainer"))

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05)
        self.metrics = MetricsRecorder([JsonlSink(self.run_dir / "metrics.jsonl")])
        self.checkpoint_saver: FileSaver | None = FileSaver(self.run_dir / "checkpoints", self)

    def record_metrics(self, metrics: dict[str, float]) -> None:
        self.metrics.record(metrics, self.global_timestep)

    def train_epoch(self) -> None:
        """One real optimisation step on a fixed regression target, then the epoch's steps."""
        inputs = PROBE
        target = torch.ones(4, 1)
        loss = torch.nn.functional.mse_loss(self.model(inputs), target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.global_timestep += self.steps_per_epoch
        self.total_episodes_completed += 1
        self.record_metrics({"train/loss": loss.item()})

    def run(self, epochs: int) -> None:
        """The loop a trainer runs: lifecycle hooks around epochs and dispatch."""
        self.manager.on_train_start(self)
        try:
            for _ in range(epochs):
                self.train_epoch()
                self.record_metrics(self.manager.execute_step_callbacks_async(self))
                self.manager.execute_step_callbacks(self)
            self.manager.on_train_end(self)
        except BaseException as exc:
            self.manager.on_exception(self, exc)
            raise
        finally:
            self.manager.close()
            self.metrics.close()

    def metric_records(self) -> list[dict]:
        return read_metrics(self.run_dir / "metrics.jsonl")
