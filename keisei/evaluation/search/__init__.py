"""PUCT search guided by the policy and value heads: one position (the USI engine) or the games of
an evaluation match in lockstep.

Modules: `puct` (`PuctSearch`: the driver, one tree per position, leaves evaluated together),
`tree` (one search tree, a batch of leaves at a time), `batch_evaluator` (the batched forward
pass: priors over the legal moves, and values) and `limits` (`SearchControl`: playouts, deadline,
`stop`; no torch import, so the USI protocol loop can hold it while the network loads).
"""
