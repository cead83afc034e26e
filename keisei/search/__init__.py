"""Tree search guided by the policy and value heads, batched across positions.

Its own layer, below the network and above learning, because self-play (`keisei.rl`), evaluation
matches and the USI engine all search. Modules: `puct` (`PuctSearch`: the driver, one tree per
position, leaves evaluated together), `gumbel` (`GumbelSearch`: Gumbel root search, a move and an
improved policy from a few simulations, for search-improved self-play), `tree` (one search tree,
a batch of leaves at a time), `batch_evaluator` (the batched forward pass: priors over the legal
moves, and values) and `limits` (`SearchControl`: playouts, deadline, `stop`; no torch import, so
the USI protocol loop can hold it while the network loads).
"""
