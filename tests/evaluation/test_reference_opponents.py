"""Ladder references as opponents of background evaluation: real checkpoints, real SQLite files
(the run's Elo registry and the shared ladder registry), real games against the real
Fairy-Stockfish at one node a move, and the report written from them."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from keisei.config import Config, EvaluationConfig, LadderConfig, LadderReference
from keisei.evaluation.during_training.manager import EvaluationManager, run_evaluation
from keisei.evaluation.ladder.calibration import (
    BESIDE_THE_RUNS,
    CalibratedReference,
    Calibration,
    write_calibration,
)
from keisei.evaluation.ladder.reference_opponents import (
    choose_references,
    current_rating,
    fit_run,
    latest_scores,
    played_references,
    reference_labels,
    reference_lines,
    reference_name,
    stored_ratings,
)
from keisei.evaluation.ladder.registry import LadderRegistry, StoredRating
from keisei.evaluation.ladder.stopping import Score
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.evaluation.report import write_report
from keisei.evaluation.result import GameResult
from tests.support.checkpoints import save_checkpoint
from tests.support.engines import fairy_stockfish

PNG = b"\x89PNG\r\n\x1a\n"
STEP = 128
PREVIOUS = "run/step_000000064"


def stockfish(name: str, skill: int) -> LadderReference:
    return LadderReference(name=name, opponent=f"usi:{fairy_stockfish()}",
                           options={"Skill Level": str(skill)}, byoyomi_ms=None,
                           nodes=1)  # fmt: skip


def ladder(*extra: LadderReference) -> LadderConfig:
    """random and Fairy-Stockfish at Skill Level -20, -10 and 0 (one node a move)."""
    references = [
        LadderReference(name="random", opponent="random"),
        stockfish("fs -20", -20),
        stockfish("fs -10", -10),
        stockfish("fs 0", 0),
        *extra,
    ]
    return LadderConfig(references=references, games_per_reference=8, min_games=6,
                        max_plies=40)  # fmt: skip


def settings(**changes: object) -> EvaluationConfig:
    fields: dict[str, object] = {"num_games": 6, "max_plies": 40, "random_opening_plies": 2,
                                 "pool_size": 0, "save_records": False}  # fmt: skip
    return EvaluationConfig.model_validate(fields | changes)


def names(config: LadderConfig) -> dict[str, str]:
    return {r.name: reference_name(r) for r in config.references}


def record(registry: EloRegistry, opponent: str, wins: int, losses: int, *,
           agent: str = PREVIOUS, step: int = 64) -> None:  # fmt: skip
    """A past snapshot's games against `opponent`: `wins` won, then `losses` lost."""
    registry.ensure_player(agent, "agent", step=step)
    registry.ensure_player(opponent, "random" if opponent == "random" else "usi")
    for i, outcome in enumerate(["win"] * wins + ["loss"] * losses):
        color = ("black", "white")[i % 2]
        registry.record_result(agent, GameResult(opponent, color, outcome, "resign", 30),
                               step=step)  # fmt: skip


def store(runs: Path, ratings: dict[str, tuple[str, float]]) -> None:
    with LadderRegistry(runs / "ladder.sqlite") as shared:
        shared.store(StoredRating(player, label, rating, rating - 50, rating + 50, 20, "joint")
                     for player, (label, rating) in ratings.items())  # fmt: skip


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path / "runs" / "run", seed=0, step=STEP)


def evaluate(run: Path, evaluation: EvaluationConfig, config: LadderConfig) -> list[GameResult]:
    """One evaluation of the run's checkpoint, its job sent through pickle as to a worker."""
    manager = EvaluationManager(evaluation, run, ladder=config)
    job = pickle.loads(pickle.dumps(manager._job(run / "checkpoints" / f"step_{STEP:09d}", STEP)))
    return run_evaluation(job).games


def test_with_stored_ratings_the_references_around_the_agent_are_played(run: Path):
    config = ladder()
    player = names(config)
    store(run.parent, {player["fs -20"]: ("fs -20", 100.0), player["fs -10"]: ("fs -10", 300.0),
                       player["fs 0"]: ("fs 0", 600.0)})  # fmt: skip
    with EloRegistry(run / "elo.sqlite") as registry:
        record(registry, player["fs -10"], wins=3, losses=1)  # about 300 + 190
        rating = current_rating(registry, {player["fs -10"]: 300.0})
    assert 300 < rating < 600

    games = evaluate(run, settings(), config)

    assert {g.opponent for g in games} == {"random", player["fs -10"], player["fs 0"]}
    assert [sum(g.opponent == name for g in games) for name in
            ("random", player["fs -10"], player["fs 0"])] == [2, 2, 2]  # fmt: skip
    with EloRegistry(run / "elo.sqlite") as registry:
        assert registry.player(player["fs -20"]) is None
        strongest = registry.player(player["fs 0"])
        recorded = [g for g in registry.games() if g.subject == f"run/step_{STEP:09d}"]
    assert len(recorded) == 6
    # A reference new to the run starts the incremental Elo at its stored rating.
    assert strongest is not None and strongest.kind == "usi" and strongest.games == 2
    assert abs(strongest.rating - 600.0) <= 2 * settings().elo_k


def calibrate(runs: Path, ratings: dict[str, tuple[str, float]]) -> None:
    """A calibration beside the runs holding these players at these ratings."""
    rows = [CalibratedReference("random", "random", "random", {}, None, None, 0.0, 0.0, 0.0, 40)]
    rows += [
        CalibratedReference(
            label, player, "usi:x", {}, None, 1, rating, rating - 30, rating + 30, 40
        )
        for player, (label, rating) in ratings.items()
    ]
    write_calibration(Calibration(tuple(rows), (), {}, {}, "2026-01-01T00:00:00+00:00"),
                      runs / BESIDE_THE_RUNS)  # fmt: skip


def test_calibrated_ratings_place_the_references_and_outrank_stored_ones(run: Path):
    config = ladder()
    player = names(config)
    calibrate(run.parent, {player["fs -20"]: ("fs -20", 100.0), player["fs -10"]: ("fs -10", 300.0),
                           player["fs 0"]: ("fs 0", 600.0)})  # fmt: skip
    store(run.parent, {player["fs -10"]: ("fs -10", 5000.0)})  # an old agent-fitted rating
    assert stored_ratings(run.parent / "ladder.sqlite")[player["fs -10"]].rating == 300.0
    with EloRegistry(run / "elo.sqlite") as registry:
        record(registry, player["fs -10"], wins=3, losses=1)  # about 300 + 190

    games = evaluate(run, settings(), config)

    assert {g.opponent for g in games} == {"random", player["fs -10"], player["fs 0"]}
    with EloRegistry(run / "elo.sqlite") as registry:
        fitted = fit_run(registry.games(), {player["fs -10"]: 300.0, player["fs 0"]: 600.0})
    assert fitted[player["fs -10"]].rating == 300.0  # the run's games never move them
    assert fitted[player["fs 0"]].rating == 600.0


def test_without_stored_ratings_the_run_climbs_the_ladder_in_order(run: Path):
    config = ladder()
    player = names(config)
    with EloRegistry(run / "elo.sqlite") as registry:
        record(registry, "random", wins=6, losses=0)
        # Early defeats beyond the latest 8 games (ladder.games_per_reference) do not count.
        record(registry, player["fs -20"], wins=0, losses=6, agent="run/step_000000032", step=32)
        record(registry, player["fs -20"], wins=8, losses=0)
        record(registry, player["fs -10"], wins=1, losses=5)

    games = evaluate(run, settings(), config)

    # fs -10 is the weakest not passed: it and the one below it, besides random.
    assert {g.opponent for g in games} == {"random", player["fs -20"], player["fs -10"]}
    assert not (run.parent / "ladder.sqlite").exists()  # read only where it exists


def test_a_fresh_run_starts_at_the_bottom_of_the_ladder(run: Path):
    config = ladder()
    games = evaluate(run, settings(num_games=4), config)
    assert {g.opponent for g in games} == {"random", names(config)["fs -20"]}
    games = evaluate(run, settings(num_games=4, reference_opponents=0), config)
    assert {g.opponent for g in games} == {"random"}


def test_the_choice_counts_references_around_the_next_one_to_reach():
    config = ladder()
    player = list(names(config).values())

    def picked(stored: dict[str, float], rating: float, count: int,
               scores: dict[str, Score] | None = None) -> list[str]:  # fmt: skip
        chosen = choose_references(config.references, player, stored, rating, scores or {},
                                   count, config)  # fmt: skip
        return [choice.reference.name for choice in chosen]

    rated = {player[1]: 100.0, player[2]: 300.0, player[3]: 600.0}
    assert picked(rated, 450.0, 2) == ["fs -10", "fs 0"]
    assert picked(rated, 450.0, 1) == ["fs 0"]
    assert picked(rated, 450.0, 3) == ["fs -20", "fs -10", "fs 0"]  # kept within the list
    assert picked(rated, 900.0, 2) == ["fs -10", "fs 0"]
    assert picked(rated, -50.0, 2) == ["random", "fs -20"]
    assert picked(rated, 450.0, 0) == []
    # An unrated reference listed after every rated one continues the climb, by the test.
    assert picked({player[1]: 100.0}, 150.0, 2) == ["fs -20", "fs -10"]
    passed = {player[2]: Score(wins=8)}
    assert picked({player[1]: 100.0}, 150.0, 2, passed) == ["fs -10", "fs 0"]


def test_the_run_fit_keeps_stored_references_at_their_ratings(run: Path):
    player = names(ladder())
    with EloRegistry(run / "elo.sqlite") as registry:
        record(registry, "random", wins=5, losses=1)
        record(registry, player["fs -10"], wins=3, losses=1)
        games = registry.games()
    fixed = fit_run(games, {player["fs -10"]: 300.0, player["fs 0"]: 600.0})
    free = fit_run(games, {})
    assert fixed["random"].rating == 0.0
    assert fixed[player["fs -10"]].rating == 300.0
    assert fixed[player["fs -10"]].low == fixed[player["fs -10"]].high == 300.0
    assert player["fs 0"] not in fixed  # not played by the run: not part of its fit
    assert 300.0 < fixed[PREVIOUS].rating < 600.0
    assert abs(free[player["fs -10"]].rating - 300.0) > 50.0  # the run alone puts it elsewhere
    assert free["random"].rating == 0.0


def test_a_missing_engine_is_skipped_with_one_warning(run: Path, caplog: pytest.LogCaptureFixture):
    ghost = LadderReference(name="ghost", opponent="usi:/nonexistent/engine")
    config = LadderConfig(references=[LadderReference(name="random", opponent="random"), ghost],
                          max_plies=40)  # fmt: skip
    manager = EvaluationManager(settings(num_games=4), run, ladder=config)
    checkpoint = run / "checkpoints" / f"step_{STEP:09d}"
    with caplog.at_level(logging.WARNING, logger="keisei"):
        first = manager.evaluate_checkpoint(checkpoint, STEP)
        second = manager.evaluate_checkpoint(checkpoint, STEP)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "/nonexistent/engine" in w]) == 1
    assert "ghost skipped" in next(w for w in warnings if "/nonexistent/engine" in w)
    for result in (first, second):
        assert result.total_games == 4
        assert {g.opponent for g in result.games} == {"random"}


def test_the_report_draws_the_references_and_tabulates_the_latest_scores(run: Path):
    config = ladder()
    player = names(config)
    store(run.parent, {player["fs -10"]: ("fs -10", 300.0), player["fs 0"]: ("fs 0", 600.0)})
    with EloRegistry(run / "elo.sqlite") as registry:
        record(registry, "random", wins=5, losses=1)
        record(registry, player["fs -10"], wins=3, losses=1)
        record(registry, player["fs -20"], wins=2, losses=2)  # unrated: fitted from the run
        record(registry, player["fs 0"], wins=0, losses=2, agent=f"run/step_{STEP:09d}",
               step=STEP)  # fmt: skip
    with LadderRegistry(run.parent / "ladder.sqlite") as shared:
        stored = shared.stored()
    labels = reference_labels(config, stored)
    fixed = {name: s.rating for name, s in stored.items()}
    with EloRegistry(run / "elo.sqlite") as registry:
        fitted = fit_run(registry.games(), fixed)
        lines = reference_lines(played_references(registry, labels), labels, fixed, fitted)
        scores = latest_scores(registry, lines)
    drawn = {line.label: line for line in lines}
    assert {label: line.source for label, line in drawn.items()} == {
        "random": "anchor",
        "fs -20": "fitted",
        "fs -10": "stored",
        "fs 0": "stored",
    }
    assert [line.rating for line in lines] == sorted(line.rating for line in lines)
    assert (drawn["random"].rating, drawn["fs -10"].rating, drawn["fs 0"].rating) == (0, 300, 600)
    assert drawn["fs -20"].rating == fitted[player["fs -20"]].rating  # the run's own estimate
    assert drawn["fs 0"].text == "fs 0 (600)" and drawn["fs -20"].text.endswith(", fitted)")
    assert {s.line.label: (s.step, str(s.score)) for s in scores} == {
        "random": (64, "5/0/1"), "fs -20": (64, "2/0/2"), "fs -10": (64, "3/0/1"),
        "fs 0": (STEP, "0/0/2")}  # fmt: skip

    (run / "config.yaml").write_text("ladder:\n" + "\n".join(
        "  " + line for line in _yaml(config).splitlines()) + "\n")  # fmt: skip
    report = write_report(run).read_text()
    assert (run / "report" / "elo.png").read_bytes().startswith(PNG)
    assert "random = 0, references at their stored ladder ratings" in report
    assert "| fs 0 | 600 (stored) | step 128 | 2 | 0 | 0 | 2 | 0% |" in report
    assert "| fs -10 | 300 (stored) | step 64 | 4 | 3 | 0 | 1 | 75% |" in report
    assert "| random | 0 (anchor) | step 64 | 6 | 5 | 0 | 1 | 83% |" in report
    # Labelled as the run's config.yaml names it, at its rating fitted from the run.
    fitted_row = f"| fs -20 | {drawn['fs -20'].rating:.0f} (fitted) | step 64 | 4 | 2 | 0 | 2 |"
    assert fitted_row in report


def test_a_report_without_references_says_why_the_curve_may_be_flat(run: Path):
    games = evaluate(run, settings(num_games=2, reference_opponents=0), ladder())
    assert {g.opponent for g in games} == {"random"}
    report = write_report(run).read_text()
    assert "No ladder reference besides random was played" in report
    assert "| reference | Elo |" not in report


def test_reference_opponents_are_on_by_default():
    assert EvaluationConfig().reference_opponents == 2
    assert Config().evaluation.reference_opponents == 2
    with pytest.raises(ValueError):
        EvaluationConfig(reference_opponents=-1)


def _yaml(config: LadderConfig) -> str:
    import yaml

    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
