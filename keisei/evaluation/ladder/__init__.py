"""The ladder (`keisei ladder`): a checkpoint against fixed references, rated on one Elo scale.

The references (`ladder.references` in the config) are listed weakest first: by default random,
then Fairy-Stockfish at Skill Level -20, -10, -5, 0 and 5 with 100 ms a move. The agent plays
each in turn, `games_per_reference` games (colours alternating, each random opening played once
with each colour), stopping early at a reference once the sequential test is clear
(`stopping.py`: "passed" or "cannot reach"); after a reference it cannot reach, the
stronger ones are skipped. Games are saved as KIF and CSA under `<run>/games/ladder-<time>/
<reference>/`, with the plot `ladder.png` beside them.

Ratings (Bradley–Terry, Elo units, random = 0 always) come from the ladder registry
(`registry.py`), one SQLite file beside the runs (`<logging.model_dir>/ladder.sqlite`,
i.e. the parent of the run directory) and shared by all of them, so that every agent rated
there is measured against the same numbers:

- A reference with a stored rating keeps it: the agent is fitted against the references fixed
  at their stored ratings (its 95% interval treats them as exact).
- A reference without one is fitted jointly with the agent from this ladder's games (the agent
  and the new references free; random and the stored references fixed), and its rating is stored
  with its interval and the number of games it rests on, provided the agent's record against it
  is two-sided (it took and dropped points; else the likelihood has no maximum and the fit would
  show only the prior) and its program never crashed or hung. It is fixed from then on. Games
  against a one-sided new reference are left out of the agent's fit.
- `--refit` (after playing) refits every reference from all the games stored so far, by all
  agents (every agent and reference free, random fixed), replaces the stored ratings of those
  linked to random by the games and with a two-sided record, and then rates the agent against
  them as above.
- Without random or a stored reference among the games played there is no scale: the agent is
  not rated (and a ladder that could not rate anything is refused before it starts).
- Games a program lost by crashing or hanging are recorded but left out of every fit.

Reference players are named as in the Elo registries, by every setting that sets their strength
(e.g. `usi:fairy-stockfish Skill Level=-10 byoyomi=100ms`): changing a reference's options or
limits makes a new reference. A time-limited engine's strength depends on the machine; `nodes`
does not. The openings and the built-in players' moves follow `ladder.seed` (each reference seeded
by its place in `ladder.references`, so `--references` replays the same games), but
Fairy-Stockfish below Skill Level 20 picks its weaker moves at random, so its games vary.

The games and the agent's ladder rating also go into the run's own Elo database, so
`keisei ratings RUN` shows them (and `keisei report RUN` counts the games).

Modules: `run` (`run_ladder`: one ladder, played, rated and stored), `setup` (its settings, the
references chosen and checked), `play` (the references in order, game by game), `stopping` (the
sequential test), `ratings` (the fits with stored references held fixed), `registry` (the shared
`ladder.sqlite`), `plot` (`ladder.png`) and `reference_opponents` (the references as opponents of
a training run's evaluation, and the run's ratings on the ladder's scale).
"""
