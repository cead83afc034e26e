"""The policy loss of search-improved self-play (expert iteration with a Gumbel root search).

In a game with `selfplay.playouts` > 0, each of the learner's moves comes from the Gumbel root
search (`keisei.search.gumbel`), which also returns its improved policy over the legal moves,

    pi'(a) = softmax(l(a) + sigma(q(a))),

l the network's logits at the time of the game, q the completed action values, sigma the paper's
monotone transform. pi' is what the policy should have been: Danihelka et al. (2022) show that,
for the values the search saw, it is at least as good as pi = softmax(l). So the policy is
trained towards it by the cross-entropy

    L^CE = E_s [ -sum_a pi'(a|s) log pi_theta(a|s) ]   (legal a only; pi' is 0 elsewhere)

which is KL(pi' || pi_theta) plus the entropy of pi', a constant. Its gradient with respect to
the logits z of a position is pi_theta - pi': each logit moves until the network's policy is the
improved one, i.e. until z = l + sigma(q) up to a constant, so the network learns to add what the
search found. Unlike the surrogate, it needs no probability ratio: the target holds however far
the policy has moved during the update's epochs, and the move actually played (chosen by the
noise and the halving) matters only through the games it led to.

`selfplay.policy_target` picks the policy loss: `improved` is L^CE alone (it replaces -L^CLIP);
`improved+ppo` is -L^CLIP + L^CE (the surrogate on the move played, its ratio against the
network's own probability of it). The value still learns from the game results through GAE, and
the entropy bonus stays as configured.
"""

from __future__ import annotations

import torch

from keisei.model.network import masked_logits


def improved_policy_loss(
    logits: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """L^CE: the mean over the batch of -sum_a targets(a) log pi_theta(a), over legal labels.

    logits, mask, targets: (B, 2187); each row of `targets` is a distribution over that row's
    legal labels (0 on illegal ones)."""
    log_policy = torch.log_softmax(masked_logits(logits.float(), mask), dim=-1)
    return -(targets * log_policy.masked_fill(~mask, 0.0)).sum(-1).mean()
