"""The tree of one PUCT search, grown a batch of leaves at a time.

AlphaZero-style: each playout walks down the tree choosing the move that maximises
Q + c_puct * P * sqrt(N_parent) / (1 + N), until it reaches a position not yet evaluated or a
finished game. A batch of playouts is gathered with a virtual loss (a path counts as a loss until
its value arrives), so one forward pass serves many leaves; a playout that runs into a leaf already
waiting in the batch is withdrawn (a collision). Game ends come from `ShogiGame`'s rules (mate,
repetition, perpetual check, declaration); a position where the side to move mates in one
(cshogi's 1-ply mate search) is a proven win, not evaluated.

The tree does not run the network: `gather` writes its leaves into a `BatchEvaluator`'s slots and
`absorb` takes their priors and values back, so a driver (`keisei.search.puct`) can
put the leaves of several trees into one forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cshogi
import numpy as np

from keisei.search.batch_evaluator import BatchEvaluator
from keisei.shogi import ShogiGame


class Node:
    """A position in the tree: its legal moves with priors, and per-move visit counts and value
    sums from this position's side to move's point of view."""

    __slots__ = (
        "children",
        "first",
        "moves",
        "n",
        "pending",
        "priors",
        "q_count",
        "q_sum",
        "terminal",
        "visits",
        "w",
    )

    def __init__(self, terminal: float | None = None) -> None:
        self.terminal = terminal
        self.pending = terminal is None
        self.moves: list[int] = []
        self.priors = np.zeros(0, dtype=np.float32)
        self.n = np.zeros(0)
        self.w = np.zeros(0)
        self.children: list[Node | None] = []
        self.q_sum = 0.0
        self.q_count = 0
        self.visits = 0
        self.first = 0

    def expand(self, moves: list[int], priors: np.ndarray, value: float) -> None:
        self.moves = moves
        self.priors = priors.astype(np.float64)
        self.n = np.zeros(len(moves))
        self.w = np.zeros(len(moves))
        self.children = [None] * len(moves)
        self.first = int(np.argmax(priors))
        self.q_sum, self.q_count = float(value), 1
        self.pending = False

    def best_index(self) -> int:
        """A move proven to win at once if there is one, else the most visited move that is not
        proven to lose at once (ties go to the higher prior)."""
        children = self.children
        for index, child in enumerate(children):
            if child is not None and child.terminal == -1.0:
                return index
        ranked = np.lexsort((self.priors, self.n))[::-1]
        for index in ranked:
            child = children[index]
            if child is None or child.terminal != 1.0:
                return int(index)
        return int(ranked[0])


def _terminal_value(game: ShogiGame) -> float:
    """The finished game's result for the side to move there."""
    result = game.result
    assert result is not None
    if result.winner is None:
        return 0.0
    return 1.0 if result.winner == game.side_to_move else -1.0


def _mate_in_one(board: cshogi.Board, legal: list[int] | None) -> int | None:
    """A move that checkmates at once (cshogi's 1-ply mate search, verified on the board), or
    None. `legal`, when given, must contain it. A position with such a move is a proven win for
    its side to move, so the search needs no network evaluation there."""
    move = board.mate_move_in_1ply()
    if not move or (legal is not None and move not in legal):
        return None
    board.push(move)
    mated = board.is_check() and not any(True for _ in board.legal_moves)
    board.pop()
    return move if mated else None


Path = list[tuple[Node, int]]


class SearchTree:
    """The search of `game` (not over). Playouts push moves onto `game` itself and take them back,
    so the game is as it was whenever the tree is not inside `gather`."""

    def __init__(self, game: ShogiGame, *, c_puct: float, fpu_reduction: float) -> None:
        if game.is_over:
            raise ValueError(f"cannot search a finished game ({game.result})")
        self.game = game
        self.board = game.board_copy()  # mirrors the path, for the mate probe only
        self.root = Node()
        self.c_puct = c_puct
        self.fpu_reduction = fpu_reduction
        self.playouts = 0
        self.seldepth = 0
        self.collisions = 0
        self.settled = False
        """True when the root needs no search: a mate in one there, or a single legal move."""
        self._waiting: list[tuple[Path, Node]] = []

    def expand_root(self, priors: np.ndarray, value: float, *, probe_mate: bool) -> None:
        """Expand the root with the network's answer; with `probe_mate`, a mate in one there is
        found now and settles the search."""
        root = self.root
        root.expand(self.game.legal_moves(), priors, value)
        mate = _mate_in_one(self.board, root.moves) if probe_mate else None
        if mate is not None:
            index = root.moves.index(mate)
            root.children[index] = Node(-1.0)
            root.n[index], root.w[index] = 1.0, 1.0
        self.settled = mate is not None or len(root.moves) <= 1

    def gather(
        self, evaluator: BatchEvaluator, first_slot: int, budget: int, limit: int
    ) -> list[np.ndarray]:
        """Walk playouts until `limit` (<= `budget`) leaves wait for the network, their
        observations written to the evaluator's slots from `first_slot` on; at most `budget`
        playouts in all. Playouts that end in a finished game or a proven mate are backed up at
        once. Returns the waiting leaves' legal labels, in slot order; `absorb` completes them."""
        labels: list[np.ndarray] = []
        done = collisions = 0
        while len(self._waiting) < limit and done + len(self._waiting) < budget:
            if collisions >= limit:
                break
            outcome = self._playout(evaluator, first_slot, labels, None)
            done += outcome == "done"
            collisions += outcome == "collision"
        self.collisions += collisions
        self.playouts += done
        return labels

    def gather_through(
        self, evaluator: BatchEvaluator, first_slot: int, root_indices: Sequence[int]
    ) -> list[np.ndarray]:
        """One playout through each of the root's moves `root_indices` (indices into
        `root.moves`), chosen by the caller instead of the PUCT rule (the Gumbel root search);
        below the root the PUCT rule as usual. Returns the waiting leaves' labels like `gather`."""
        labels: list[np.ndarray] = []
        for index in root_indices:
            outcome = self._playout(evaluator, first_slot, labels, index)
            self.playouts += outcome == "done"
            self.collisions += outcome == "collision"
        return labels

    def _playout(
        self,
        evaluator: BatchEvaluator,
        first_slot: int,
        labels: list[np.ndarray],
        root_index: int | None,
    ) -> str:
        """One playout from the root (through `root_index` when given): "leaf" when it stopped
        at a position now waiting for the network, "done" when it ended in a finished game or a
        proven mate (backed up at once), "collision" when it ran into a leaf already waiting."""
        game, board, node = self.game, self.board, self.root
        waiting = self._waiting
        path: Path = []
        outcome = "leaf"
        while True:
            if root_index is not None and not path:
                index = root_index
            else:
                index = self._select(node) if node.visits else node.first
            node.visits += 1
            node.n[index] += 1
            node.w[index] -= 1.0  # virtual loss
            path.append((node, index))
            game.push_move(node.moves[index])
            board.push(node.moves[index])
            child = node.children[index]
            if child is None:
                if game.is_over:
                    child = node.children[index] = Node(_terminal_value(game))
                elif _mate_in_one(board, None) is not None:
                    child = node.children[index] = Node(1.0)  # its side to move mates
                else:
                    child = node.children[index] = Node()
                    game.observation(evaluator.slot(first_slot + len(waiting)))
                    child.moves = game.legal_moves()
                    labels.append(game.legal_labels())
                    waiting.append((path, child))
                    break
            if child.pending:
                self._withdraw(path)
                outcome = "collision"
                break
            if child.terminal is not None:
                self._backup(path, child.terminal)
                outcome = "done"
                break
            node = child
        self.seldepth = max(self.seldepth, len(path))
        for _ in path:
            game.pop()
            board.pop()
        return outcome

    def absorb(self, priors: Sequence[np.ndarray], values: np.ndarray) -> None:
        """The network's answers for the leaves the last `gather` returned, in the same order."""
        waiting = self._waiting
        for (path, child), prior, value in zip(waiting, priors, values, strict=True):
            child.expand(child.moves, prior, float(value))
            self._backup(path, float(value))
        self.playouts += len(waiting)
        waiting.clear()

    def _select(self, node: Node) -> int:
        n = node.n
        fpu = node.q_sum / node.q_count - self.fpu_reduction
        q = np.where(n > 0, node.w / np.maximum(n, 1.0), fpu)
        q += node.priors * (self.c_puct * math.sqrt(node.visits + 1.0) / (1.0 + n))
        return int(q.argmax())

    @staticmethod
    def _backup(path: Path, leaf_value: float) -> None:
        """`leaf_value` is for the side to move at the end of `path`; flip it at each ply."""
        value = leaf_value
        for node, index in reversed(path):
            value = -value
            node.w[index] += 1.0 + value  # remove the virtual loss, add the real value
            node.q_sum += value
            node.q_count += 1

    @staticmethod
    def _withdraw(path: Path) -> None:
        for node, index in path:
            node.visits -= 1
            node.n[index] -= 1
            node.w[index] += 1.0
