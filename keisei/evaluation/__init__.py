"""The evaluation layer: matches between players, their ratings, the ladder, and the evaluation
that rates a training run's checkpoints.

Top level: `match` (`play_match`: N games between two players, colours alternating, batched where
both can), `result` (what an evaluation produces; plain data that crosses processes),
`standalone` (`keisei evaluate`) and `report` (`keisei report`). Sub-packages: `players` (who
plays: random, greedy, a network, a USI engine; their search is `keisei.search`),
`ratings` (the Elo registry, Bradley–Terry fits), `ladder` (`keisei ladder`, fixed references on
one scale) and `during_training` (`EvaluationManager`, the opponent pool, the worker processes).
`docs/packages.md` maps who calls what.
"""
