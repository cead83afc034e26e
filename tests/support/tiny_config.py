"""Overrides for a training run small enough to finish in seconds on a CPU (tests)."""

TINY = [
    "model.blocks=1",
    "model.channels=8",
    "model.value_hidden=8",
    "env.num_envs=4",
    "env.max_plies=40",
    "training.steps_per_epoch=64",
    "training.total_timesteps=256",
    "training.checkpoint_interval_timesteps=128",
    "ppo.minibatch_size=32",
    "ppo.update_epochs=2",
    "ppo.amp=off",  # float32 on every machine; the tests of bf16 ask for it
    "logging.tensorboard=false",
    "evaluation.enable_periodic_evaluation=false",
    "evaluation.reference_opponents=0",  # tests that play the ladder's engines say so
]
