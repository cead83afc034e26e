"""Training in bf16: chosen and said once in the log, and learning what float32 learns.

The same small run (same seed, a learning rate high enough that the policy moves) in float32 and
in bf16. In the first epoch both play the same games, so its losses agree closely; after that the
games part once a sampled move differs, and the runs agree as two runs of one algorithm do: every
epoch's losses within `TOLERANCE` (about twice the largest difference measured over 8 epochs
here: 0.07 entropy, 0.01 policy loss, 0.01 KL, 0.03 value loss; the KL itself ranges from 0.002
to 0.02 between epochs of one run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keisei.log import read_metrics
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer
from tests.support.tiny_config import TINY

LEARNING = (
    "model.channels=16",
    "env.num_envs=16",
    "env.max_plies=200",
    "training.steps_per_epoch=512",
    "training.total_timesteps=2048",
    "ppo.minibatch_size=128",
    "ppo.update_epochs=4",
    "ppo.learning_rate=0.003",
)
FIRST_EPOCH_TOLERANCE = {"ppo/entropy": 1e-3, "ppo/policy_loss": 1e-3, "ppo/approx_kl": 1e-3}
TOLERANCE = {
    "ppo/entropy": 0.15,
    "ppo/policy_loss": 0.02,
    "ppo/approx_kl": 0.02,
    "ppo/value_loss": 0.06,
}


def run(tmp_path: Path, name: str, amp: str, *extra: str) -> Trainer:
    overrides = [*TINY, f"logging.model_dir={tmp_path}", f"ppo.amp={amp}", *extra]
    trainer = Trainer(plan_run(None, overrides, name, None))
    trainer.train()
    return trainer


def test_bf16_asked_for_on_the_cpu_trains_in_bf16_and_says_so_once(tmp_path: Path):
    trainer = run(tmp_path, "bf16", "bf16")
    assert trainer.precision.name == "bf16"
    assert trainer.model.precision is trainer.precision
    log = (tmp_path / "bf16" / "train.log").read_text()
    assert log.count("precision bf16") == 1
    assert "needs a CUDA device" not in log and "training in float32" not in log


@pytest.mark.slow
def test_bf16_learns_what_float32_learns(tmp_path: Path):
    for amp in ("off", "bf16"):
        run(tmp_path, amp, amp, *LEARNING)
    epochs = {
        amp: [r for r in read_metrics(tmp_path / amp / "metrics.jsonl") if "ppo/entropy" in r]
        for amp in ("off", "bf16")
    }
    f32, bf16 = epochs["off"], epochs["bf16"]
    assert [r["step"] for r in f32] == [r["step"] for r in bf16] == [512, 1024, 1536, 2048]
    assert max(r["ppo/approx_kl"] for r in f32) > 1e-3  # the policy really moved
    for key, tolerance in FIRST_EPOCH_TOLERANCE.items():
        assert abs(f32[0][key] - bf16[0][key]) <= tolerance, (key, f32[0][key], bf16[0][key])
    for a, b in zip(f32, bf16, strict=True):
        for key, tolerance in TOLERANCE.items():
            assert abs(a[key] - b[key]) <= tolerance, (a["step"], key, a[key], b[key])
