"""The batched evaluator and the PUCT search, in process, on a tiny untrained network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keisei.checkpoint import load_network
from keisei.checkpoint.errors import CheckpointError
from keisei.model import masked_logits
from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.limits import SearchControl
from keisei.search.puct import PuctSearch
from keisei.shogi import ShogiGame
from keisei.usi.agent import Agent, pick_device
from tests.support.checkpoints import tiny_model
from tests.usi.helpers import MATE_IN_ONE_SFEN, random_game


def _positions() -> list[ShogiGame]:
    return [ShogiGame(), random_game(1, 31), random_game(2, 80), ShogiGame(MATE_IN_ONE_SFEN)]


def test_evaluator_priors_are_the_masked_softmax_of_the_network() -> None:
    torch.manual_seed(0)
    model = tiny_model(5)
    with torch.no_grad():  # make the policy far from uniform so the check means something
        model.policy_head.weight.normal_(0, 1.0)
    games = _positions()
    evaluator = BatchEvaluator(model, capacity=8, device="cpu")
    priors, values = evaluator.evaluate_games(games)
    obs = torch.from_numpy(np.stack([g.observation() for g in games]))
    masks = torch.from_numpy(np.stack([g.legal_mask() for g in games]))
    with torch.no_grad():
        logits, expected_values = model(obs)
        expected = torch.softmax(masked_logits(logits, masks), dim=1).numpy()
    for index, game in enumerate(games):
        labels = game.legal_labels()
        assert priors[index].shape == labels.shape
        np.testing.assert_allclose(priors[index], expected[index][labels], rtol=1e-4, atol=1e-6)
        assert priors[index].sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(values, expected_values.numpy(), rtol=1e-5, atol=1e-6)
    assert evaluator.positions == len(games) and evaluator.calls == 1


def test_evaluator_refuses_wrong_batches() -> None:
    evaluator = BatchEvaluator(tiny_model(), capacity=2, device="cpu")
    with pytest.raises(ValueError):
        evaluator.evaluate([])
    with pytest.raises(ValueError):
        evaluator.evaluate([np.arange(3)] * 3)
    with pytest.raises(ValueError):
        evaluator.evaluate([np.arange(0)])
    with pytest.raises(ValueError):
        BatchEvaluator(tiny_model(), capacity=0, device="cpu")


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_search_plays_legal_moves_and_leaves_the_game_untouched(batch: int) -> None:
    search = PuctSearch(BatchEvaluator(tiny_model(), capacity=batch, device="cpu"))
    for game in _positions():
        before = (game.sfen(), game.usi_moves, game.repetitions())
        result = search.run(game, SearchControl(max_playouts=150))
        assert (game.sfen(), game.usi_moves, game.repetitions()) == before
        assert result.usi in game.legal_usi()
        # A mate in one at the root is played at once; anything else gets all its playouts.
        assert result.playouts == (0 if result.mate else 150)
        assert result.pv[0] == result.usi
        assert -1.0 <= result.value <= 1.0


def test_visit_counts_add_up_to_the_playouts() -> None:
    """Every playout ends in exactly one backup, and no virtual loss is left behind."""
    search = PuctSearch(BatchEvaluator(tiny_model(), capacity=16, device="cpu"))
    game = random_game(4, 40)
    seen: dict[str, object] = {}
    original = search._result

    def capture(root, playouts, seldepth, seconds):  # type: ignore[no-untyped-def]
        seen["root"], seen["playouts"] = root, playouts
        return original(root, playouts, seldepth, seconds)

    search._result = capture  # type: ignore[method-assign]
    search.run(game, SearchControl(max_playouts=300))
    root = seen["root"]
    assert root.n.sum() == seen["playouts"] == 300  # type: ignore[attr-defined]
    assert root.visits == 300  # type: ignore[attr-defined]
    # Values are within [-1, 1] per visit once virtual losses are gone.
    n, w = root.n, root.w  # type: ignore[attr-defined]
    assert np.all(np.abs(w[n > 0] / n[n > 0]) <= 1.0 + 1e-9)


def test_zero_playouts_is_the_policy_argmax() -> None:
    model = tiny_model(3)
    with torch.no_grad():
        model.policy_head.weight.normal_(0, 1.0)
    agent = Agent(model)
    for game in _positions():
        result = agent.choose(game, playouts=0)
        obs = torch.from_numpy(game.observation()[None])
        with torch.no_grad():
            logits, value = model(obs)
        best = int(masked_logits(logits, torch.from_numpy(game.legal_mask()[None])).argmax())
        assert result.move == game.move_for_label(best)
        assert result.playouts == 0
        assert result.value == pytest.approx(float(value[0]), abs=1e-6)


def test_search_finds_mate_in_one_that_the_policy_misses() -> None:
    """An untrained network has no idea; the search sees the game end and plays G*5b."""
    agent = Agent(tiny_model())
    game = ShogiGame(MATE_IN_ONE_SFEN)
    result = agent.choose(game, playouts=200)
    assert result.usi == "G*5b" and result.mate == 1 and result.value == 1.0
    game.push_move(result.move)
    assert game.result is not None and game.result.reason == "checkmate"


def test_stop_and_deadline_end_the_search() -> None:
    search = PuctSearch(BatchEvaluator(tiny_model(), capacity=4, device="cpu"))
    control = SearchControl(max_playouts=10_000)
    control.stop.set()
    stopped = search.run(ShogiGame(), control)
    assert stopped.playouts == 0 and stopped.usi in ShogiGame().legal_usi()
    expired = search.run(ShogiGame(), SearchControl(max_playouts=10_000, deadline=0.0))
    assert expired.playouts == 0


def test_progress_is_reported_and_a_finished_game_refused(monkeypatch) -> None:
    import keisei.search.puct as search_module

    monkeypatch.setattr(search_module, "PROGRESS_INTERVAL_S", 0.0)
    search = PuctSearch(BatchEvaluator(tiny_model(), capacity=4, device="cpu"))
    reports = []
    final = search.run(ShogiGame(), SearchControl(max_playouts=40), reports.append)
    assert reports and [r.playouts for r in reports] == sorted(r.playouts for r in reports)
    assert reports[-1].playouts == final.playouts == 40
    mated = ShogiGame("4k4/4G4/4P4/9/9/9/9/9/4K4 w - 1")
    with pytest.raises(ValueError, match="finished"):
        search.run(mated, SearchControl(max_playouts=10))


def test_single_legal_move_needs_no_search() -> None:
    # White's king on 9a, checked by the rook on 9i, the gold on 8c covering 8b and 9b.
    game = ShogiGame("k8/9/1G7/9/9/9/9/9/R3K4 w - 1")
    assert game.legal_usi() == ["9a8a"]
    result = Agent(tiny_model()).choose(game, playouts=500)
    assert result.usi == "9a8a" and result.playouts == 0


def test_agent_rebuilds_its_search_when_the_batch_size_changes(run_dir) -> None:
    agent = Agent.load(run_dir, device="cpu")
    first = agent.search
    assert agent.search is first
    agent.settings.batch_size = 3
    assert agent.search is not first and agent.search.evaluator.capacity == 3
    assert pick_device("cpu").type == "cpu"


def test_load_model_names_a_broken_checkpoint(run_dir, tmp_path) -> None:
    assert load_network(run_dir, torch.device("cpu")).architecture.channels == 8
    with pytest.raises(CheckpointError):
        load_network(tmp_path / "nothing-here", torch.device("cpu"))


EXPOSED_KING_SFEN = (
    "l1s1k2nl/2g1gr3/ppn3s+bp/n1pppp1s1/2PP2P2/P3+b1KP1/1P3PS1P/L2R4L/6GN1 b G2Pp 61"
)
"""Black to move; 61 of its moves let White mate at once, 11 do not."""


class FavouriteEvaluator(BatchEvaluator):
    """Uniform priors and zero values, except that the root's `favourite` move gets 90%."""

    def __init__(self, favourite_label: int, capacity: int) -> None:
        super().__init__(tiny_model(), capacity, "cpu")
        self.favourite = favourite_label
        self.root_done = False

    def evaluate(self, labels):  # type: ignore[no-untyped-def]
        priors = [np.full(len(row), 1.0 / len(row), dtype=np.float32) for row in labels]
        if not self.root_done:
            self.root_done = True
            row = labels[0]
            priors[0] = np.where(row == self.favourite, 0.9, 0.1 / (len(row) - 1)).astype(
                np.float32
            )
        return priors, np.zeros(len(labels), dtype=np.float32)


def test_search_refuses_a_favourite_move_that_allows_mate_in_one() -> None:
    from keisei.shogi.tactics import mate_in_one

    game = ShogiGame(EXPOSED_KING_SFEN)
    blunder = game.move_for_usi("P*5c")
    game.push_move(blunder)
    assert mate_in_one(game) is not None
    game.pop()
    search = PuctSearch(FavouriteEvaluator(game.label_for_move(blunder), capacity=8))
    result = search.run(game, SearchControl(max_playouts=64))
    game.push_move(result.move)
    assert mate_in_one(game) is None, f"{result.usi} lets White mate"


def test_root_mate_in_one_is_played_whatever_the_policy_prefers() -> None:
    game = ShogiGame(MATE_IN_ONE_SFEN)
    other = game.move_for_usi("5c5b+")
    search = PuctSearch(FavouriteEvaluator(game.label_for_move(other), capacity=4))
    result = search.run(game, SearchControl(max_playouts=50))
    assert result.usi == "G*5b" and result.mate == 1 and result.playouts == 0
    # Playouts=0 is the policy's move, mate or not.
    search = PuctSearch(FavouriteEvaluator(game.label_for_move(other), capacity=4))
    assert search.run(game, SearchControl(max_playouts=0)).usi == "5c5b+"
