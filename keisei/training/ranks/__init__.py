"""Training on several ranks, beyond the world and its collectives (`keisei.training.distributed`,
the module a user's `all_ranks` callback imports).

Modules: `agreement` (what every rank does next, decided together after self-play and after the
callbacks), `failures` (failing fast: a failure anywhere else, announced on the failure board,
stops every rank at once), `state` (`RankStates`: each rank's games, statistics and random state
in a checkpoint) and `launch` (`keisei train --nproc-per-node N`: the local launcher, ending the
group when a rank fails and restarting it from its latest checkpoint). `docs/distributed.md`
walks through a step.
"""
