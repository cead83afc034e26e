"""Ratings on the Elo scale: the run's Elo registry and the maximum-likelihood fit behind it.

Modules: `elo` (`EloRegistry`: every evaluation game and player of a run in SQLite, with the
incremental Elo of the live display) and `bradley_terry` (Bradley–Terry fits with 95% intervals,
any players held fixed; what `keisei ratings`, the report and the ladder rate with).
"""
