"""Who plays evaluation games: random, greedy, a Keisei network, or an external USI engine.

Modules: `base` (the `Player` protocol, `PlayerFailure`, `RESIGN`), `builtin` (`RandomPlayer`,
`GreedyPlayer`), `network` (`NeuralPlayer`, with or without search; `load_checkpoint_player`),
`usi` (`UsiPlayer`: an engine in a subprocess, hangs and crashes losing games), `usi_client`
(`UsiEngine`: the USI protocol client it talks through) and `opponents` (`make_opponent`: a player
from its spec).
"""
