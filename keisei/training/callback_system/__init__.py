"""The parts behind the callback contract (`keisei.training.callbacks`, where users import the
classes, and `keisei.training.callback_manager`, the `CallbackManager`).

The callbacks: `base` (the hooks and when each runs, `Callback`, `AsyncCallback`, `TrainerView`),
`checkpoint` (`CheckpointCallback`), `evaluation` (`EvaluationCallback`,
`AsyncEvaluationCallback`), `extra` (the user's, from the config or `--callback`) and `defaults`
(what a run gets from its config). The manager's parts: `dispatch` (which callbacks run at a step,
in what order), `health` (calling hooks safely; the failure policy), `metrics` (merging what the
hooks return), `state` (callback state through checkpoints, by `state_key`) and `event_loop` (the
background loop async callbacks run on). Nothing here imports the two contract modules.
"""
