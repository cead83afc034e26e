"""The ladder (`keisei ladder`): a checkpoint against fixed references, rated on one Elo scale.

The references (`ladder.references` in the config) are listed weakest first: by default random,
then Fairy-Stockfish at Skill Levels -20 to 5, each limited to 10,000 nodes a move (`go nodes`),
what it searched at `byoyomi 100` on an idle machine here: so a reference plays the same on a busy
machine as on an idle one, and as the time-limited reference of its Skill Level did when idle.
The agent plays each in turn, `games_per_reference` games (colours alternating, each random
opening played once with each colour), stopping early at a reference once the sequential test is
clear (`stopping.py`: "passed" or "cannot reach"); after a reference it cannot reach, the
stronger ones are skipped. Games are saved as KIF and CSA under `<run>/games/ladder-<time>/
<reference>/`, with the plot `ladder.png` beside them.

Ratings (Bradley–Terry, Elo units, random = 0 always):

- A calibrated reference keeps the rating of the calibration (`calibration.py`): games among the
  references themselves, neighbours on the ladder, made by `keisei ladder --recalibrate`
  (`recalibrate.py`); Keisei ships the default ladder's. The agent is fitted against those fixed
  ratings (its 95% interval treats them as exact); its games never move them.
- A reference not in the calibration (its settings differ from every calibrated one: a user's
  own, a time-limited one) is named in a warning and rated as before calibrations existed, from
  the ladder registry (`registry.py`), one SQLite file beside the runs
  (`<logging.model_dir>/ladder.sqlite`, i.e. the parent of the run directory) shared by all of
  them: with a stored rating it keeps it; without one it is fitted jointly with the agent from
  this ladder's games (the agent and the new references free; random and the fixed references
  fixed), and its rating is stored with its interval and the number of games it rests on,
  provided the agent's record against it is two-sided (it took and dropped points; else the
  likelihood has no maximum and the fit would show only the prior) and its program never crashed
  or hung. It is fixed from then on. Games against a one-sided new reference are left out of the
  agent's fit.
- `--refit` (after playing) refits every uncalibrated reference from all the games stored so
  far, by all agents (every agent and those references free, random and the calibrated ones
  fixed), replaces the stored ratings of those linked to a fixed player by the games and with a
  two-sided record, and then rates the agent against them as above.
- Without random, a calibrated or a stored reference among the games played there is no scale:
  the agent is not rated (and a ladder that could not rate anything is refused before it starts).
- Games a program lost by crashing or hanging are recorded but left out of every fit.

Reference players are named as in the Elo registries, by every setting that sets their strength
(e.g. `usi:fairy-stockfish Skill Level=-10 nodes=10000`): changing a reference's options or
limits makes a new reference, which the calibration does not know. A time-limited engine's
strength depends on the machine and its load; `nodes` does not. The openings and the built-in
players' moves follow `ladder.seed` (each reference seeded by its place in `ladder.references`,
so `--references` replays the same games), but Fairy-Stockfish below Skill Level 20 picks its
weaker moves at random, so its games vary.

The games and the agent's ladder rating also go into the run's own Elo database, so
`keisei ratings RUN` shows them (and `keisei report RUN` counts the games).

Modules: `run` (`run_ladder`: one ladder, played, rated and stored), `setup` (its settings, the
references chosen and checked), `play` (the references in order, game by game), `stopping` (the
sequential test), `ratings` (the fits with fixed references held), `calibration` (the
calibration file: read, written, matched), `recalibrate` (`--recalibrate`: the references' games
among themselves, rated), `pair` (one pair of neighbours played until its gap is measured,
journalled), `registry` (the shared `ladder.sqlite`), `plot` (`ladder.png`) and
`reference_opponents` (the references as opponents of a training run's evaluation, and the
run's ratings on the ladder's scale).
"""
