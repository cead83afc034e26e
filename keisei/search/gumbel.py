"""Gumbel root search (Danihelka et al. 2022, "Policy improvement by planning with Gumbel"): a
move and an improved policy from a few simulations (2 to 32), for search-improved self-play.

At the root, with the network's logits l(a) over the legal moves and independent Gumbel(0, 1)
noise g(a) drawn once per search:

1. Consider the m = min(`considered`, legal moves, simulations) moves with the largest g + l
   (Gumbel top-k: a sample of m moves from the policy, without replacement).
2. Sequential halving: rounds visit each remaining move once (a playout through it, the PUCT rule
   below the root, one leaf evaluated by the network); the survivors of each round are the best
   by g + l + sigma(q) and their number halves between phases (`visit_rounds`), so that the
   `simulations` are spread over about log2(m) phases. A last, partial round visits only the best
   ones, which are then the only candidates.
3. The move played is the surviving move with the largest g + l + sigma(q).
4. The improved policy, the training target, is softmax(l + sigma(completed q)) over all legal
   moves.

Here q(a) is the mean value of the playouts through a, for the side to move at the root. A move
with no playout gets the "mixed value" v_mix = (v + N * sum_b pi(b) q(b) / sum_b pi(b)) / (1 + N)
instead (v: the network's value of the root; N: all root visits; the sums over visited moves b;
pi the network's policy), which is q completed. The completed values are rescaled to [0, 1] over
the legal moves (min to max) and sigma(q) = (c_visit + max_b N(b)) * c_scale * q, the paper's
monotone transform (c_visit 50, c_scale 0.1), so more visits let the values weigh more against
the prior.

The searches of several games run in lockstep: each round every game gathers the leaves of its
visits, and they go through the network together. The noise comes from torch's default generator
(so a checkpoint's random state carries it). A mate in one at the root, or a single legal move,
is played at once with a one-hot target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.puct import evaluate_gathered
from keisei.search.tree import SearchTree
from keisei.shogi import ShogiGame


def visit_rounds(considered: int, simulations: int) -> list[int]:
    """How many moves each round visits once, for `considered` moves and `simulations` playouts.

    A phase gives each of its k moves max(1, simulations // (ceil(log2 considered) * k)) visits
    (one round each), then k halves (never below 2); the rounds stop at exactly `simulations`
    visits, the last one partial if need be."""
    if considered < 1 or simulations < 1:
        return []
    if considered == 1:
        return [1] * simulations
    phases = max(1, math.ceil(math.log2(considered)))
    rounds: list[int] = []
    left, k = simulations, considered
    while left > 0:
        for _ in range(max(1, simulations // (phases * k))):
            rounds.append(min(k, left))
            left -= rounds[-1]
            if left == 0:
                break
        k = max(2, k // 2)
    return rounds


@dataclass(frozen=True)
class GumbelResult:
    """The move to play and the search's improved policy at the root."""

    move: int
    """The move played (cshogi's move)."""
    label: int
    """Its policy label."""
    labels: np.ndarray
    """The root's legal labels."""
    improved: np.ndarray
    """The improved policy over `labels` (sums to 1)."""
    prior: np.ndarray
    """The network's policy over `labels`."""
    value: float
    """The network's value of the root, for its side to move."""
    simulations: int


class _Root:
    """One game's root search state: its tree, logits, noise and surviving moves."""

    def __init__(self, tree: SearchTree, labels: np.ndarray, prior: np.ndarray, value: float):
        self.tree = tree
        self.labels = labels
        self.prior = prior.astype(np.float64)
        self.value = value
        self.logits = np.log(np.maximum(self.prior, 1e-30))
        self.gumbel = np.zeros(len(prior))
        self.survivors = np.zeros(0, dtype=np.intp)
        self.rounds: list[int] = []

    def completed_q(self) -> np.ndarray:
        """q(a) for visited moves, the mixed value for the others (root side to move's view)."""
        root = self.tree.root
        n, w = root.n, root.w
        visited = n > 0
        q = np.where(visited, w / np.maximum(n, 1.0), 0.0)
        total = float(n.sum())
        mixed = self.value
        if total > 0:
            weight = float(self.prior[visited].sum())
            weighted = float((self.prior[visited] * q[visited]).sum()) / max(weight, 1e-12)
            mixed = (self.value + total * weighted) / (1.0 + total)
        return np.where(visited, q, mixed)

    def sigma(self, c_visit: float, c_scale: float) -> np.ndarray:
        q = self.completed_q()
        low, high = float(q.min()), float(q.max())
        rescaled = (q - low) / max(high - low, 1e-8)
        return (c_visit + float(self.tree.root.n.max())) * c_scale * rescaled

    def best(self, candidates: np.ndarray, count: int, sigma: np.ndarray) -> np.ndarray:
        """The `count` candidates with the largest g + l + sigma(q), best first."""
        score = self.gumbel[candidates] + self.logits[candidates] + sigma[candidates]
        return candidates[np.argsort(-score, kind="stable")[:count]]


class GumbelSearch:
    """Gumbel root search with `simulations` playouts a move over `evaluator`'s network."""

    def __init__(
        self,
        evaluator: BatchEvaluator,
        simulations: int,
        *,
        considered: int = 16,
        c_visit: float = 50.0,
        c_scale: float = 0.1,
        c_puct: float = 1.5,
        fpu_reduction: float = 0.2,
    ) -> None:
        if simulations < 1:
            raise ValueError(f"simulations must be at least 1, not {simulations}")
        if considered < 2:
            raise ValueError(f"considered moves must be at least 2, not {considered}")
        self.evaluator = evaluator
        self.simulations = simulations
        self.considered = considered
        self.c_visit = c_visit
        self.c_scale = c_scale
        self.c_puct = c_puct
        self.fpu_reduction = fpu_reduction

    def run_many(self, games: Sequence[ShogiGame]) -> list[GumbelResult]:
        """Search each of `games` (distinct, none over; each restored on return) in lockstep."""
        roots = self._roots(games)
        active = [root for root in roots if root.rounds]
        step = 0
        while active:
            self._round(active, step)
            step += 1
            active = [root for root in active if step < len(root.rounds)]
        return [self._result(root) for root in roots]

    def _roots(self, games: Sequence[ShogiGame]) -> list[_Root]:
        trees = [
            SearchTree(game, c_puct=self.c_puct, fpu_reduction=self.fpu_reduction) for game in games
        ]
        roots: list[_Root] = []
        capacity = self.evaluator.capacity
        for first in range(0, len(trees), capacity):
            chunk = trees[first : first + capacity]
            priors, values = self.evaluator.evaluate_games([tree.game for tree in chunk])
            for tree, prior, value in zip(chunk, priors, values, strict=True):
                tree.expand_root(prior, float(value), probe_mate=True)
                roots.append(_Root(tree, tree.game.legal_labels(), prior, float(value)))
        for root in roots:
            if root.tree.settled:
                continue
            moves = len(root.prior)
            root.gumbel = -torch.empty(moves, dtype=torch.float64).exponential_().log().numpy()
            considered = min(self.considered, moves, self.simulations)
            root.survivors = root.best(np.arange(moves), considered, np.zeros(moves))
            root.rounds = visit_rounds(considered, self.simulations)
        return roots

    def _round(self, roots: list[_Root], step: int) -> None:
        """Each root visits its best `rounds[step]` survivors once; leaves evaluated together."""
        capacity = self.evaluator.capacity
        gathered: list[tuple[SearchTree, int]] = []
        labels: list[np.ndarray] = []
        for root in roots:
            count = root.rounds[step]
            sigma = root.sigma(self.c_visit, self.c_scale)
            root.survivors = root.best(root.survivors, count, sigma)
            if len(labels) + count > capacity:
                evaluate_gathered(self.evaluator, gathered, labels)
                gathered, labels = [], []
            found = root.tree.gather_through(self.evaluator, len(labels), root.survivors.tolist())
            if found:
                gathered.append((root.tree, len(found)))
                labels += found
        evaluate_gathered(self.evaluator, gathered, labels)

    def _result(self, root: _Root) -> GumbelResult:
        tree = root.tree
        moves = len(root.prior)
        if tree.settled:
            index = tree.root.best_index()
            improved = np.zeros(moves)
            improved[index] = 1.0
        else:
            sigma = root.sigma(self.c_visit, self.c_scale)
            index = int(root.best(root.survivors, 1, sigma)[0])
            logits = root.logits + sigma
            improved = np.exp(logits - logits.max())
            improved /= improved.sum()
        return GumbelResult(
            move=tree.root.moves[index],
            label=int(root.labels[index]),
            labels=root.labels,
            improved=improved,
            prior=root.prior,
            value=root.value,
            simulations=tree.playouts,
        )
