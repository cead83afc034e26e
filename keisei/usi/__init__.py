"""A trained agent for Shogi tools: the USI engine (`keisei usi`) and terminal play (`keisei play`).

Modules: `engine` (the protocol loop), `protocol`, `options`, `position` and `time_control`
(light, no torch), `agent` (the network and its search settings), `play` and `board_view` (the
terminal game), `locate` (which checkpoint), `commands` (the CLI). The PUCT search itself lives
in the evaluation layer (`keisei.search`: `puct`, with `batch_evaluator`, `tree` and
`limits`), where evaluation matches use it too.
"""
