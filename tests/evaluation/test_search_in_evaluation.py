"""PUCT search for the agent's moves in evaluation games: batched across a match's games, the same
moves as searching each game alone, fewer forward passes, and rated under its own name."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from keisei.cli import main
from keisei.config import EvaluationConfig
from keisei.evaluation.during_training.manager import EvaluationManager, _run_in_worker
from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.players.builtin import RandomPlayer
from keisei.evaluation.players.network import NeuralPlayer, load_checkpoint_player
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.model import ActorCritic
from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.limits import SearchControl
from keisei.search.puct import PuctSearch
from keisei.shogi import ShogiGame
from tests.support.checkpoints import save_checkpoint, tiny_model
from tests.usi.helpers import MATE_IN_ONE_SFEN, random_game


class CountingModel(torch.nn.Module):
    """The real network, counting its forward passes and the positions they carried."""

    def __init__(self, model: ActorCritic) -> None:
        super().__init__()
        self.model = model
        self.architecture = model.architecture
        self.calls = 0
        self.rows = 0

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        self.rows += len(obs)
        return self.model(obs)


def _network() -> CountingModel:
    model = tiny_model(1)
    with torch.no_grad():  # priors far from uniform, so the trees differ from game to game
        model.policy_head.weight.normal_(0, 0.5)
    return CountingModel(model)


def _games() -> list[ShogiGame]:
    return [ShogiGame(), *(random_game(seed, 10 + 9 * seed) for seed in range(5))]


def _state(game: ShogiGame) -> tuple[str, list[str], int]:
    return game.sfen(), game.usi_moves, game.repetitions()


def test_lockstep_search_equals_each_search_alone_with_fewer_forward_passes() -> None:
    network = _network()
    games = _games()
    before = [_state(game) for game in games]
    search = PuctSearch(BatchEvaluator(network, 4 * len(games), "cpu"), leaf_batch=4)
    together = search.run_many(games, SearchControl(max_playouts=32))
    passes_together, rows_together = network.calls, network.rows
    assert [_state(game) for game in games] == before  # every game restored
    network.calls = network.rows = 0
    alone = [search.run(game, SearchControl(max_playouts=32)) for game in games]
    passes_alone, rows_alone = network.calls, network.rows
    for many, one in zip(together, alone, strict=True):
        assert (many.usi, many.playouts, many.pv, many.mate) == (one.usi, one.playouts, one.pv,
                                                                 one.mate)  # fmt: skip
        assert many.value == pytest.approx(one.value, abs=1e-6)
        assert many.playouts == 32
    # The same positions evaluated, in one pass for the roots and one per round of (up to) 4
    # leaves a game, where each game alone needs as many passes itself: 1 + 32 / 4 here.
    assert rows_together == rows_alone
    assert passes_together < passes_alone / 3
    assert passes_together <= 1 + 32 // 4 + 2
    with pytest.raises(ValueError, match="distinct"):
        search.run_many([games[0], games[0]], SearchControl(max_playouts=8))


def test_searching_player_moves_as_it_would_for_each_game_alone() -> None:
    network = _network()
    player = NeuralPlayer(network, name="net", playouts=16, search_batch=4)
    games = _games()
    together = player.choose_many(games)
    passes_together = network.calls
    network.calls = 0
    alone = [player.choose(game) for game in games]
    assert together == alone
    assert network.calls > passes_together
    assert all(move in game.legal_usi() for move, game in zip(together, games, strict=True))


def test_searching_player_plays_only_legal_moves_in_a_match(tmp_path: Path) -> None:
    agent = NeuralPlayer(tiny_model(2), name="net", playouts=8)
    settings = MatchSettings(games=4, max_plies=30, random_opening_plies=2, seed=3,
                             record_dir=tmp_path)  # fmt: skip
    results = play_match(agent, RandomPlayer(5), settings)
    assert len(results) == 4
    assert all(result.reason != "illegal_move" for result in results)
    assert all(result.plies > 2 for result in results)
    assert all("net-puct8_vs_random" in Path(r.record_path or "").name for r in results)


def test_search_plays_the_mate_in_one_that_the_raw_policy_misses() -> None:
    game = ShogiGame(MATE_IN_ONE_SFEN)  # Black mates with G*5b
    raw = NeuralPlayer(tiny_model(0), name="net")
    searching = NeuralPlayer(tiny_model(0), name="net", playouts=8)
    assert raw.choose(game) != "G*5b"
    assert searching.choose(game) == "G*5b"
    assert (raw.name, searching.name) == ("net", "net+puct8")


def test_names_keep_ratings_apart_and_bad_settings_are_refused(tmp_path: Path) -> None:
    run = save_checkpoint(tmp_path / "run", step=64)
    plain = load_checkpoint_player(run)
    searching = load_checkpoint_player(run, playouts=8, kind="agent")
    assert plain.name == "run/step_000000064" and plain.playouts == 0
    assert searching.name == "run/step_000000064+puct8" and searching.path == plain.path
    with pytest.raises(ValueError):
        NeuralPlayer(tiny_model(), name="net", playouts=-1)
    assert EvaluationConfig().playouts == 0
    for bad in (-1, "8", 2.5):
        with pytest.raises(ValueError):
            EvaluationConfig(playouts=bad)


def test_keisei_evaluate_with_playouts_records_the_searching_player(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = save_checkpoint(tmp_path / "run", step=128)
    code = main(["evaluate", str(run), "--playouts", "8", "--games", "2", "--opponent", "random",
                 "--max-plies", "40"])  # fmt: skip
    assert code == 0
    assert "run/step_000000128+puct8 vs random" in capsys.readouterr().out
    with EloRegistry(run / "elo.sqlite") as registry:
        player = registry.player("run/step_000000128+puct8")
        games = registry.games()
    assert player is not None and player.games == 2
    assert len(games) == 2
    assert all("run/step_000000128+puct8" in (game.black, game.white) for game in games)
    assert len(list((run / "games").glob("evaluate-*/*puct8*.csa"))) == 2


def test_evaluation_playouts_reach_the_worker_job(tmp_path: Path) -> None:
    run = save_checkpoint(tmp_path / "run", step=256)
    config = EvaluationConfig(playouts=4, num_games=2, max_plies=24, pool_size=0,
                              save_records=False)  # fmt: skip
    manager = EvaluationManager(config, run)
    checkpoint = run / "checkpoints" / "step_000000256"
    job = pickle.loads(pickle.dumps(manager._job(checkpoint, 256)))  # as sent to a worker
    assert job.settings.playouts == 4
    result = _run_in_worker(job)
    assert result.total_games == 2
    with EloRegistry(run / "elo.sqlite") as registry:
        agent = registry.latest_agent()
    assert agent is not None and agent.name == "run/step_000000256+puct4"
    assert agent.kind == "agent" and agent.games == 2
