"""Evaluation during training: rating the run's committed checkpoints as it trains.

Modules: `manager` (`EvaluationManager`: one evaluation's games against the fixed opponents, the
ladder references around the agent and the opponent pool, in this process or a worker; results
written beside the checkpoint and into the run's Elo registry), `pool` (`OpponentPool`: the run's
own past checkpoints as opponents) and `worker_pool` (`WorkerPool`: the background processes,
a crashed one failing only its own task).
"""
