"""PUCT tree search guided by the policy and value heads, with batched leaf evaluation: one
position (the USI engine) or several at once (the games of an evaluation match).

Each search grows its own tree (`keisei.search.tree`) a batch of `leaf_batch` leaves at
a time. Several positions are searched in lockstep: in each round every tree gathers its batch of
leaves, the batches go through the network together (as few forward passes as the evaluator's
capacity allows), and each tree takes its values and priors back. A tree grows exactly as it would
searched alone with the same settings, so the moves do not depend on which other games were
searched beside it (up to the network's own rounding across batch shapes); the search draws no
random numbers. A mate in one at the root is played at once. With no playouts the result is the
policy's own best move, from one evaluation of the root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import cshogi
import numpy as np

from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.limits import SearchControl
from keisei.search.tree import Node, SearchTree
from keisei.shogi import ShogiGame

PROGRESS_INTERVAL_S: Final[float] = 0.5


@dataclass(frozen=True)
class SearchResult:
    """The chosen move and what the search knows about it (values for the side to move)."""

    move: int
    usi: str
    value: float
    playouts: int
    pv: list[str]
    seldepth: int
    seconds: float
    mate: int | None = None
    """+1 when the chosen move mates at once."""


class PuctSearch:
    """Searches with `evaluator`; each tree gathers `leaf_batch` leaves per forward pass (None:
    the evaluator's capacity, so a single search fills it alone)."""

    def __init__(
        self,
        evaluator: BatchEvaluator,
        *,
        c_puct: float = 1.5,
        fpu_reduction: float = 0.2,
        leaf_batch: int | None = None,
    ) -> None:
        if leaf_batch is not None and leaf_batch < 1:
            raise ValueError(f"leaf batch must be at least 1, not {leaf_batch}")
        self.evaluator = evaluator
        self.c_puct = c_puct
        self.fpu_reduction = fpu_reduction
        self.leaf_batch = leaf_batch
        self.collisions = 0

    def run(
        self,
        game: ShogiGame,
        control: SearchControl,
        on_progress: Callable[[SearchResult], None] | None = None,
    ) -> SearchResult:
        """Search `game` (not over; restored on return) within `control`'s limits."""
        return self._search([game], control, on_progress)[0]

    def run_many(self, games: Sequence[ShogiGame], control: SearchControl) -> list[SearchResult]:
        """Search each of `games` (distinct games, none over; each restored on return) in
        lockstep, `control.max_playouts` playouts each; the stop and deadline end them all.
        Each result is the one `run` gives for that game alone."""
        if len({id(game) for game in games}) != len(games):
            raise ValueError("run_many needs distinct game objects")
        return self._search(games, control, None)

    # --- the lockstep loop ---------------------------------------------------------------

    def _search(
        self,
        games: Sequence[ShogiGame],
        control: SearchControl,
        on_progress: Callable[[SearchResult], None] | None,
    ) -> list[SearchResult]:
        started = time.monotonic()
        trees = [
            SearchTree(game, c_puct=self.c_puct, fpu_reduction=self.fpu_reduction) for game in games
        ]
        evaluator = self.evaluator
        capacity = evaluator.capacity
        for first in range(0, len(trees), capacity):
            chunk = trees[first : first + capacity]
            priors, values = evaluator.evaluate_games([tree.game for tree in chunk])
            for tree, prior, value in zip(chunk, priors, values, strict=True):
                tree.expand_root(prior, float(value), probe_mate=control.max_playouts > 0)
        leaf_batch = min(self.leaf_batch or capacity, capacity)
        last_report = started
        active = [tree for tree in trees if not tree.settled]
        while True:
            active = [tree for tree in active if not control.should_stop(tree.playouts)]
            if not active:
                break
            self._round(active, control.max_playouts, leaf_batch)
            now = time.monotonic()
            if on_progress is not None and now - last_report >= PROGRESS_INTERVAL_S:
                last_report = now
                tree = trees[0]
                on_progress(self._result(tree.root, tree.playouts, tree.seldepth, now - started))
        self.collisions += sum(tree.collisions for tree in trees)
        seconds = time.monotonic() - started
        return [self._result(t.root, t.playouts, t.seldepth, seconds) for t in trees]

    def _round(self, trees: list[SearchTree], max_playouts: int, leaf_batch: int) -> None:
        """One batch of leaves from each tree, evaluated in as few forward passes as fit."""
        capacity = self.evaluator.capacity
        gathered: list[tuple[SearchTree, int]] = []
        labels: list[np.ndarray] = []
        for tree in trees:
            budget = max_playouts - tree.playouts
            limit = min(leaf_batch, budget)
            if len(labels) + limit > capacity:
                evaluate_gathered(self.evaluator, gathered, labels)
                gathered, labels = [], []
            found = tree.gather(self.evaluator, len(labels), budget, limit)
            if found:
                gathered.append((tree, len(found)))
                labels += found
        evaluate_gathered(self.evaluator, gathered, labels)

    # --- reporting -----------------------------------------------------------------------

    def _result(self, root: Node, playouts: int, seldepth: int, seconds: float) -> SearchResult:
        best = root.best_index()
        visits = root.n[best]
        value = root.w[best] / visits if visits else root.q_sum / root.q_count
        child = root.children[best]
        mate = 1 if child is not None and child.terminal == -1.0 else None
        return SearchResult(
            move=root.moves[best],
            usi=cshogi.move_to_usi(root.moves[best]),
            value=float(value),
            playouts=playouts,
            pv=self._pv(root),
            seldepth=max(seldepth, 1),
            seconds=seconds,
            mate=mate,
        )

    @staticmethod
    def _pv(root: Node) -> list[str]:
        pv: list[str] = []
        node: Node | None = root
        while node is not None and node.moves and not node.pending:
            best = node.best_index()
            pv.append(cshogi.move_to_usi(node.moves[best]))
            if node.n[best] == 0:
                break
            node = node.children[best]
        return pv


def evaluate_gathered(
    evaluator: BatchEvaluator, gathered: list[tuple[SearchTree, int]], labels: list[np.ndarray]
) -> None:
    """One forward pass over the leaves several trees gathered (`gathered`: each tree and how
    many of the slots, in order, are its; `labels` their legal labels); each tree absorbs its
    answers."""
    if not labels:
        return
    priors, values = evaluator.evaluate(labels)
    first = 0
    for tree, count in gathered:
        tree.absorb(priors[first : first + count], values[first : first + count])
        first += count
