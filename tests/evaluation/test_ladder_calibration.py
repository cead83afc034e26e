"""The ladder's calibration: the shipped file, ratings that no agent moves, `--recalibrate` on
tiny ladders (real Fairy-Stockfish at a few nodes, real games, real files), and the errors of
a missing or corrupt file."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from keisei.cli import main
from keisei.config import (
    BRIDGE_NODES,
    REFERENCE_NODES,
    REFERENCE_SKILLS,
    Config,
    ConfigError,
    LadderConfig,
    LadderReference,
    config_from_dict,
)
from keisei.evaluation.ladder.calibration import (
    BESIDE_THE_RUNS,
    SHIPPED_CALIBRATION,
    CalibratedReference,
    Calibration,
    CalibrationError,
    calibration_file,
    check_engines,
    engine_identity,
    read_calibration,
    write_calibration,
)
from keisei.evaluation.ladder.pair import CONTINUED, PairGame, journal_of
from keisei.evaluation.ladder.recalibrate import recalibrate
from keisei.evaluation.ladder.reference_opponents import reference_name, stored_ratings
from keisei.evaluation.ladder.registry import LadderRegistry, LadderRegistryError
from keisei.evaluation.ladder.run import run_ladder
from keisei.evaluation.ladder.setup import reference_player
from keisei.shogi import ShogiGame
from tests.support.checkpoints import save_checkpoint
from tests.support.engines import fairy_stockfish


def stockfish(name: str, skill: int = -20, nodes: int = 1) -> LadderReference:
    return LadderReference(name=name, opponent=f"usi:{fairy_stockfish()}",
                           options={"Skill Level": str(skill)}, nodes=nodes)  # fmt: skip


RANDOM = LadderReference(name="random", opponent="random")


def tiny(*references: LadderReference, **changes: object) -> LadderConfig:
    fields: dict[str, object] = {"references": [RANDOM, *references], "games_per_reference": 4,
                                 "max_plies": 24}  # fmt: skip
    return LadderConfig.model_validate(fields | changes)


def calibration_of(*ratings: tuple[LadderReference, float]) -> Calibration:
    """A calibration holding these references at these ratings (as if played)."""
    rows = tuple(
        CalibratedReference(r.name, reference_name(r), r.opponent, dict(r.options), r.byoyomi_ms,
                            r.nodes, rating, rating - 40, rating + 40, 100)
        for r, rating in ratings
    )  # fmt: skip
    return Calibration(rows, (), {}, {"note": "made by a test"}, "2026-01-01T00:00:00+00:00")


# ----------------------------------------------------------------------- the shipped calibration


def test_the_shipped_calibration_rates_every_default_reference_from_neighbours_games():
    calibration = read_calibration(SHIPPED_CALIBRATION)
    ladder = Config().ladder
    players = [reference_name(r) for r in ladder.references]
    assert [c.player for c in calibration.references] == players
    assert [c.name for c in calibration.references] == [r.name for r in ladder.references]
    ratings = [c.rating for c in calibration.references]
    assert ratings[0] == 0.0 and ratings == sorted(ratings)  # random = 0, weakest first
    engines = [r for r in ladder.references if r.opponent.startswith("usi:")]
    assert engines and all(r.nodes is not None and r.byoyomi_ms is None for r in engines)
    assert [c.nodes for c in calibration.references[1:]] == [
        BRIDGE_NODES, *(REFERENCE_NODES for _ in REFERENCE_SKILLS)
    ]
    # one gap per pair of neighbours, each measured to the promised precision
    assert [(g.lower, g.upper) for g in calibration.gaps] == [
        (a.name, b.name) for a, b in zip(ladder.references, ladder.references[1:], strict=False)
    ]
    rules = calibration.settings
    assert rules["interval_elo"] <= 200  # ±100 Elo
    for gap in calibration.gaps:  # each measured that far, or it played the most games asked
        assert gap.width < rules["interval_elo"] or gap.games >= rules["max_games"], gap
        assert gap.games == gap.wins + gap.draws + gap.losses >= rules["min_games"] >= 20
    assert "Fairy-Stockfish" in calibration.engines["/usr/games/fairy-stockfish"]
    assert calibration.settings["max_plies"] == ladder.max_plies
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*", calibration.created)


def test_without_a_file_of_its_own_the_ladder_reads_the_shipped_one(tmp_path: Path):
    assert calibration_file(LadderConfig(), tmp_path) == SHIPPED_CALIBRATION
    (tmp_path / BESIDE_THE_RUNS).write_text("{}")
    assert calibration_file(LadderConfig(), tmp_path) == tmp_path / BESIDE_THE_RUNS
    chosen = LadderConfig.model_validate({"calibration": {"file": str(tmp_path / "mine.json")}})
    assert calibration_file(chosen, tmp_path) == tmp_path / "mine.json"


@pytest.mark.slow
def test_setuptools_ships_the_calibration(tmp_path: Path):
    """A wheel built from a copy of the project holds the calibration file."""
    repo = Path(__file__).resolve().parents[2]
    source = tmp_path / "source"
    shutil.copytree(repo / "keisei", source / "keisei",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(repo / name, source / name)
    built = subprocess.run(
        [sys.executable, "-c", "import setuptools.build_meta as b, sys; "
         "print(b.build_wheel(sys.argv[1]))", str(tmp_path / "dist")],
        cwd=source, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = tmp_path / "dist" / built.stdout.split()[-1]
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("keisei/evaluation/ladder/calibration.json")
    assert shipped == SHIPPED_CALIBRATION.read_bytes()


# ---------------------------------------------------------------- ratings no agent's games move


def test_an_agent_never_moves_a_calibrated_rating(tmp_path: Path):
    engine = stockfish("fs -20 (nodes 1)")
    settings = tiny(engine)
    calibration = calibration_of((RANDOM, 0.0), (engine, 321.5))
    for seed, step in ((0, 128), (1, 256)):
        run = save_checkpoint(tmp_path / "runs" / f"run{seed}", seed=seed, step=step)
        for refit in (False, True):
            result = run_ladder(run, settings.references, settings, refit=refit,
                                calibration=calibration)  # fmt: skip
            rung = result.rungs[1]
            assert rung.rating is not None and rung.rating.rating == 321.5
            assert (rung.rating.low, rung.rating.high) == (281.5, 361.5)
            assert rung.rated == "calibrated, 100 games"
            assert result.agent_rating is not None
    with LadderRegistry(tmp_path / "runs" / "ladder.sqlite") as shared:
        assert shared.stored() == {}  # never stored, never refitted
        assert len(shared.games()) == 4 * 8  # but every game is kept


def test_a_reference_not_in_the_calibration_is_named_and_rated_from_games(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    calibrated, mine = stockfish("fs -20 (nodes 1)"), stockfish("my fs -10", skill=-10, nodes=2)
    settings = tiny(calibrated, mine)
    run = save_checkpoint(tmp_path / "runs" / "run", step=128)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        calibration = calibration_of((RANDOM, 0.0), (calibrated, 200.0))
        result = run_ladder(run, settings.references, settings, calibration=calibration)
    [warning] = [r.getMessage() for r in caplog.records if "calibration" in r.getMessage()]
    assert "'my fs -10' not in the calibration" in warning and "--recalibrate" in warning
    assert "fs -20 (nodes 1)" not in warning
    assert result.rungs[1].rated == "calibrated, 100 games"
    assert result.rungs[2].rated in ("new, 4 games", "unrated (one-sided)")
    with LadderRegistry(tmp_path / "runs" / "ladder.sqlite") as shared:
        assert reference_name(calibrated) not in shared.stored()


def test_the_time_limited_references_stay_available_by_config():
    timed = LadderReference(name="fs -10 100 ms", opponent="usi:/usr/games/fairy-stockfish",
                            options={"Skill Level": "-10"})  # fmt: skip
    assert (timed.byoyomi_ms, timed.nodes) == (100, None)  # no limit given: 100 ms, as before
    assert reference_name(timed) == "usi:fairy-stockfish Skill Level=-10 byoyomi=100ms"
    both = LadderReference(name="x", opponent="usi:/usr/games/fairy-stockfish", nodes=5,
                           byoyomi_ms=50)  # fmt: skip
    assert (both.byoyomi_ms, both.nodes) == (50, 5)
    loaded = config_from_dict({"ladder": {"references": [
        {"name": "fs", "opponent": "usi:/usr/games/fairy-stockfish", "nodes": 9}]}})  # fmt: skip
    assert loaded.ladder.references[0].byoyomi_ms is None  # nodes alone


def test_node_limited_settings_reach_the_engine():
    reference = stockfish("fs -10 (nodes 2000)", skill=-10, nodes=2000)
    player = reference_player(reference, seed=0, timeout_s=30)
    try:
        player.new_game()
        player.choose(ShogiGame())
        engine = player._engine
        assert engine is not None and engine.last_info is not None
        searched = int(engine.last_info.split(" nodes ")[1].split()[0])
    finally:
        player.close()
    assert 2000 <= searched <= 2100  # `go nodes 2000`, and no clock to stop it elsewhere
    assert player.nodes == 2000 and player.byoyomi_ms is None


# --------------------------------------------------------------------------------- recalibrate


def test_recalibrate_on_a_tiny_ladder_writes_a_file_the_ladder_then_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    runs = tmp_path / "runs"
    engine = stockfish("fs -20 (nodes 1)")
    references = json.dumps([RANDOM.model_dump(mode="json"), engine.model_dump(mode="json")])
    argv = ["ladder", "--recalibrate", "--games", "6", "--set", f"logging.model_dir={runs}",
            "--set", f"ladder.references={references}", "--set", "ladder.max_plies=16",
            "--set", "ladder.calibration.min_games=4"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    written = runs / BESIDE_THE_RUNS
    assert f"calibration: {written}" in out and "fs -20 (nodes 1)" in out
    calibration = read_calibration(written)
    [gap] = calibration.gaps
    assert (gap.lower, gap.upper) == ("random", "fs -20 (nodes 1)")
    assert 4 <= gap.games <= 6 and gap.draws > 0  # 16 plies: mostly draws, two-sided
    assert gap.low < gap.elo < gap.high
    assert [c.player for c in calibration.references] == ["random", reference_name(engine)]
    assert calibration.references[0].rating == 0.0
    assert calibration.references[1].rating == pytest.approx(gap.elo, abs=1.0)
    assert calibration.settings["max_plies"] == 16 and calibration.settings["max_games"] == 6
    assert "Fairy-Stockfish" in calibration.engines[fairy_stockfish()]
    assert "--recalibrate" in calibration.command

    run = save_checkpoint(runs / "run", step=128)
    settings = tiny(engine)
    result = run_ladder(run, settings.references, settings)
    assert result.calibration == written
    assert result.rungs[1].rated == f"calibrated, {gap.games} games"
    assert result.rungs[1].rating is not None
    assert result.rungs[1].rating.rating == calibration.references[1].rating
    # background evaluation reads the same file
    assert stored_ratings(runs / "ladder.sqlite")[reference_name(engine)].rating == (
        calibration.references[1].rating
    )


def test_a_pair_one_side_swept_has_no_gap_and_nothing_is_written(tmp_path: Path):
    greedy = LadderReference(name="greedy", opponent="greedy")
    settings = tiny(greedy, max_plies=512,
                    calibration={"min_games": 4, "max_games": 4})  # fmt: skip
    target = tmp_path / "c.json"
    with pytest.raises(CalibrationError, match="no finite gap between 'random' and 'greedy'"):
        recalibrate(settings, target)
    assert not target.exists()


def test_recalibrate_needs_random_to_anchor_the_scale(tmp_path: Path):
    settings = LadderConfig(references=[LadderReference(name="greedy", opponent="greedy"),
                                        stockfish("fs")])  # fmt: skip
    with pytest.raises(CalibrationError, match="needs the random reference"):
        recalibrate(settings, tmp_path / "c.json")


@pytest.mark.slow
def test_pairs_can_play_in_processes_of_their_own(tmp_path: Path):
    rules = {"min_games": 2, "max_games": 2, "jobs": 2}
    settings = tiny(LadderReference(name="greedy", opponent="greedy"), stockfish("fs"),
                    max_plies=8, calibration=rules)  # fmt: skip
    seen: list[int] = []
    calibration = recalibrate(settings, tmp_path / "c.json", on_game=lambda g: seen.append(g.pair))
    assert sorted(seen) == [0, 0, 1, 1]
    assert [(g.lower, g.upper, g.games) for g in calibration.gaps] == [
        ("random", "greedy", 2), ("greedy", "fs", 2)]  # fmt: skip
    assert read_calibration(tmp_path / "c.json") == calibration


# ------------------------------------------------------------------------- missing or corrupt


def test_a_missing_or_corrupt_calibration_is_an_error_naming_it(tmp_path: Path):
    missing = tmp_path / "nowhere.json"
    with pytest.raises(CalibrationError, match=f"calibration file {missing} does not exist"):
        read_calibration(missing)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(CalibrationError, match=f"calibration file {garbage} is not valid JSON"):
        read_calibration(garbage)
    good = write_calibration(calibration_of((RANDOM, 0.0)), tmp_path / "good.json")
    assert read_calibration(good).references[0].player == "random"
    for damage in (
        lambda d: d.pop("references"),
        lambda d: d.update(format=99),
        lambda d: d["references"][0].update(rating="high"),
        lambda d: d["references"][0].update(rating=500.0),  # outside its interval
        lambda d: d.update(
            gaps=[
                {
                    "lower": "a",
                    "upper": "b",
                    "games": 3,
                    "wins": 1,
                    "draws": 0,
                    "losses": 0,
                    "elo": 1,
                    "low": 0,
                    "high": 2,
                }
            ]
        ),  # fmt: skip
    ):
        data = json.loads(good.read_text())
        damage(data)
        broken = tmp_path / "broken.json"
        broken.write_text(json.dumps(data))
        with pytest.raises(CalibrationError, match=f"calibration file {broken} is malformed"):
            read_calibration(broken)
    assert issubclass(CalibrationError, ConfigError)  # `keisei ladder` exits 2 with it


def test_the_ladder_and_background_evaluation_refuse_a_corrupt_calibration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    runs = tmp_path / "runs"
    run = save_checkpoint(runs / "run", step=128)
    broken = runs / BESIDE_THE_RUNS
    broken.write_text("[]")
    assert main(["ladder", str(run), "--games", "2"]) == 2
    assert f"calibration file {broken} is malformed" in capsys.readouterr().err
    assert not (run / "games").exists()  # refused before any game
    with pytest.raises(LadderRegistryError, match=f"calibration file {broken}"):
        stored_ratings(runs / "ladder.sqlite")
    named = tmp_path / "gone.json"
    assert main(["ladder", str(run), "--set", f"ladder.calibration.file={named}"]) == 2
    assert f"calibration file {named} does not exist" in capsys.readouterr().err


def journalled(outcome: str, max_plies: int = 10) -> str:
    """A journal line: one game of random against greedy, as `--recalibrate` writes it."""
    settings = {"max_plies": max_plies, "seed": 0, "random_opening_plies": 4}
    return json.dumps({"lower": "random", "upper": "greedy", "outcome": outcome, "reason": "x",
                       "plies": 10, "settings": settings})  # fmt: skip


def test_a_recalibration_continues_from_the_file_it_remakes_and_from_its_journal(tmp_path: Path):
    greedy = LadderReference(name="greedy", opponent="greedy")
    target = tmp_path / "c.json"
    short = tiny(greedy, max_plies=10, calibration={"min_games": 2, "max_games": 2})
    first = recalibrate(short, target)  # 2 games, both drawn at 10 plies
    assert (first.gaps[0].games, first.gaps[0].draws) == (2, 2)
    assert not journal_of(target).exists()  # removed once the file is written

    # interrupted after 3 more games (and a line cut short by the interruption)
    lines = [journalled("win"), journalled("loss"), journalled("draw"), "{cut short"]
    journal_of(target).write_text("\n".join(lines))
    seen: list[PairGame] = []
    longer = tiny(greedy, max_plies=10, calibration={"min_games": 6, "max_games": 6})
    [gap] = recalibrate(longer, target, on_game=seen.append).gaps
    assert gap.games == 6 and (gap.wins, gap.losses) == (1, 1)  # 2 kept + 3 journalled + 1 new
    assert [g.reason for g in seen][:5] == [CONTINUED] * 2 + ["x"] * 3
    assert read_calibration(target).gaps[0].games == 6

    # other game settings: neither the file's games nor the journal's are theirs
    journal_of(target).write_text(journalled("win") + "\n")
    other = tiny(greedy, max_plies=12, calibration={"min_games": 2, "max_games": 2})
    [gap] = recalibrate(other, target).gaps
    assert gap.wins == 0 and gap.games == 2


def test_an_engine_that_names_itself_otherwise_than_when_calibrated_is_pointed_out(
    caplog: pytest.LogCaptureFixture,
):
    calibration = replace(calibration_of((RANDOM, 0.0)), engines={"/x/fs": "Fairy-Stockfish 11.1"})
    with caplog.at_level(logging.WARNING, logger="keisei"):
        check_engines(calibration, {"/x/fs": "Fairy-Stockfish 11.1"})
        assert not caplog.records
        check_engines(calibration, {"/x/fs": "Fairy-Stockfish 14", "/y/other": "Other 1"})
    [record] = caplog.records
    assert "/x/fs is now 'Fairy-Stockfish 14'" in record.getMessage()
    message = record.getMessage()
    assert "'Fairy-Stockfish 11.1'" in message and "--recalibrate" in message
    assert engine_identity(f"usi:{fairy_stockfish()}", 30.0) == "Fairy-Stockfish 11.1 LB 64"
    assert engine_identity("random", 30.0) is None
