"""Training on several ranks, beyond the world and its collectives (`keisei.training.distributed`,
the module a user's `all_ranks` callback imports).

Modules: `agreement` (what every rank does next, decided together after self-play and after the
callbacks), `state` (`RankStates`: each rank's games, statistics and random state in a
checkpoint) and `launch` (`keisei train --nproc-per-node N`: the local launcher, restarting the
group from its latest checkpoint when a rank dies). `docs/distributed.md` walks through a step.
"""
