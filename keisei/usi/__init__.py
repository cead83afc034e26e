"""A trained agent for Shogi tools: the USI engine (`keisei usi`), terminal play (`keisei play`)
and the PUCT search both use.

Modules: `engine` (the protocol loop), `protocol`, `options`, `position`, `time_control` and
`limits` (light, no torch), `agent`, `evaluator` and `search` (the network and the tree search),
`play` and `board_view` (the terminal game), `locate` (which checkpoint), `commands` (the CLI).
"""
