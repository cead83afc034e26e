"""A Keisei network as a player: its policy's move, or the move of a PUCT search guided by it;
and a saved checkpoint loaded as one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from keisei.evaluation.players.base import label_usi
from keisei.model import choose_precision, masked_logits
from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.limits import SearchControl
from keisei.search.puct import PuctSearch
from keisei.shogi import ShogiGame


class NeuralPlayer:
    """A Keisei network: the most probable legal move (`greedy`), or a sample from the policy.

    With `playouts` > 0 it searches instead (PUCT, `keisei.search`) and plays the
    most visited move; the searches of all the games it is asked about at once run in lockstep,
    their leaves evaluated together, `search_batch` leaves per game per forward pass. Searching is
    deterministic (`greedy` and `seed` then play no part), and the name gets `+puct<N>` so that
    the Elo registry rates the network with and without search as different players.
    """

    MAX_SEARCH_ROWS = 256
    """At most this many positions in one forward pass of the search (more take several)."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        name: str,
        kind: str = "agent",
        greedy: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
        path: str | None = None,
        step: int | None = None,
        playouts: int = 0,
        search_batch: int = 8,
    ) -> None:
        if playouts < 0:
            raise ValueError(f"playouts must be >= 0, got {playouts}")
        if search_batch < 1:
            raise ValueError(f"search_batch must be >= 1, got {search_batch}")
        self.name = name + search_suffix(playouts)
        self.kind, self.path, self.step = kind, path, step
        self.model = model
        self.greedy = greedy
        self.playouts = playouts
        self.search_batch = search_batch
        self.device = torch.device(device)
        self._generator = torch.Generator(device="cpu").manual_seed(seed)
        self._obs = np.zeros((1, *model_input_shape(model)), dtype=np.float32)
        self._search: PuctSearch | None = None

    def new_game(self) -> None:
        pass

    def choose(self, game: ShogiGame) -> str:
        return self.choose_many([game])[0]

    def choose_many(self, games: Sequence[ShogiGame]) -> list[str]:
        """A move for each of `games` (each with this player to move): one batched forward pass,
        or with playouts the batched search."""
        if self.playouts > 0:
            return self._search_many(games)
        if len(self._obs) < len(games):
            self._obs = np.zeros((len(games), *self._obs.shape[1:]), dtype=np.float32)
        obs = self._obs[: len(games)]
        for row, game in zip(obs, games, strict=True):
            game.observation(out=row)
        masks = torch.from_numpy(np.stack([game.legal_mask() for game in games])).to(self.device)
        with torch.inference_mode():
            logits, _ = self.model(torch.from_numpy(obs).to(self.device))
            logits = masked_logits(logits.float(), masks).cpu()
        if self.greedy:
            labels = torch.argmax(logits, dim=-1)
        else:
            probs = torch.softmax(logits, dim=-1)
            labels = torch.multinomial(probs, 1, generator=self._generator).squeeze(-1)
        return [label_usi(game, int(label)) for game, label in zip(games, labels, strict=True)]

    def _search_many(self, games: Sequence[ShogiGame]) -> list[str]:
        """The most visited move of each game's search (the games are restored afterwards)."""
        rows = min(len(games) * self.search_batch, max(self.MAX_SEARCH_ROWS, self.search_batch))
        search = self._search
        if search is None or search.evaluator.capacity < rows:
            evaluator = BatchEvaluator(self.model, rows, self.device)
            search = self._search = PuctSearch(evaluator, leaf_batch=self.search_batch)
        results = search.run_many(games, SearchControl(max_playouts=self.playouts))
        return [result.usi for result in results]

    def close(self) -> None:
        pass


def search_suffix(playouts: int) -> str:
    """`+puct<N>` for a player that searches N playouts a move; nothing for the raw policy."""
    return f"+puct{playouts}" if playouts > 0 else ""


def model_input_shape(model: torch.nn.Module) -> tuple[int, int, int]:
    architecture = getattr(model, "architecture", None)
    planes = architecture.input_planes if architecture is not None else 119
    return (planes, 9, 9)


def load_checkpoint_player(
    path: str | Path,
    *,
    greedy: bool = True,
    seed: int = 0,
    device: str = "cpu",
    kind: str = "checkpoint",
    playouts: int = 0,
    precision: str = "auto",
) -> NeuralPlayer:
    """A saved Keisei model as a player, loaded safely (checksums verified, no pickle).

    `kind` is `checkpoint` for an opponent, `agent` for the training run's checkpoint under
    evaluation; either way its registry name is the checkpoint's (`<run>/<checkpoint>`), with
    `+puct<N>` after it when it searches `playouts` > 0 playouts a move. `precision` is a
    `ppo.amp` setting (auto, off, bf16, fp16) for the device: what the network computes in."""
    from keisei.checkpoint import load_network, resolve_checkpoint
    from keisei.checkpoint.layout import step_of

    checkpoint = resolve_checkpoint(path)
    model = load_network(checkpoint, device, choose_precision(precision, device))
    return NeuralPlayer(
        model,
        name=checkpoint_player_name(checkpoint),
        kind=kind,
        greedy=greedy,
        seed=seed,
        device=device,
        path=str(checkpoint.resolve()),
        step=step_of(checkpoint.name),
        playouts=playouts,
    )


def checkpoint_player_name(checkpoint: Path) -> str:
    """The registry name of a checkpoint played by its raw policy: `<run>/<checkpoint>`."""
    return f"{checkpoint.parent.parent.name}/{checkpoint.name}"
