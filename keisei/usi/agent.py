"""A trained network ready to choose moves: the USI engine, `keisei play` and the search benchmark
all play through `Agent.think`.

`Playouts` 0 plays the policy's best move (one evaluation); more runs the PUCT search. A position
the rules have already decided gets a fixed answer instead (`decided_answer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from keisei.checkpoint import load_network
from keisei.log import get_logger
from keisei.model import ActorCritic, choose_precision
from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.limits import SearchControl
from keisei.search.puct import PuctSearch, SearchResult
from keisei.shogi import ShogiGame
from keisei.usi.position import searchable

_logger = get_logger("usi.agent")


@dataclass
class SearchSettings:
    """The engine options that shape the search."""

    playouts: int = 0
    batch_size: int = 16
    c_puct: float = 1.5


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Agent:
    """A network plus the search settings; `think` picks a move for a game not yet decided."""

    def __init__(
        self,
        model: ActorCritic,
        device: torch.device | str = "cpu",
        settings: SearchSettings | None = None,
        name: str = "keisei",
    ) -> None:
        self.model = model
        self.device = torch.device(device)
        self.settings = settings or SearchSettings()
        self.name = name
        self._search: PuctSearch | None = None

    @classmethod
    def load(
        cls,
        checkpoint_dir: str | Path,
        *,
        device: str = "auto",
        threads: int | None = None,
        precision: str = "auto",
    ) -> Agent:
        """Load a checkpoint; `threads` sets torch's CPU threads for the whole process;
        `precision` (auto, off, bf16, fp16) what the network computes in."""
        if threads is not None:
            torch.set_num_threads(threads)
        target = pick_device(device)
        chosen = choose_precision(precision, target)
        model = load_network(checkpoint_dir, target, chosen)
        _logger.info("loaded %s on %s in %s (%s)", checkpoint_dir, target, chosen.name,
                     chosen.reason)  # fmt: skip
        return cls(model, target, name=Path(checkpoint_dir).name)

    @property
    def search(self) -> PuctSearch:
        """The search, rebuilt when the batch size or c_puct setting changed."""
        settings = self.settings
        search = self._search
        if search is None or search.evaluator.capacity != settings.batch_size:
            search = PuctSearch(BatchEvaluator(self.model, settings.batch_size, self.device))
            self._search = search
        search.c_puct = settings.c_puct
        return search

    def think(
        self,
        game: ShogiGame,
        control: SearchControl,
        on_progress: Callable[[SearchResult], None] | None = None,
    ) -> SearchResult:
        """Search `game` (searched on a copy) within `control`; `control.max_playouts` 0 plays
        the policy's best move."""
        return self.search.run(searchable(game), control, on_progress)

    def choose(self, game: ShogiGame, playouts: int | None = None) -> SearchResult:
        """A move with a playout budget only (default: the `playouts` setting)."""
        budget = self.settings.playouts if playouts is None else playouts
        return self.think(game, SearchControl(max_playouts=budget))
