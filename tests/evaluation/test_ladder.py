"""`keisei ladder`: real checkpoints, real games (cshogi), the real Fairy-Stockfish at tiny
settings, real SQLite files."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from keisei.cli import main
from keisei.config import (
    REFERENCE_NODES,
    REFERENCE_SKILLS,
    Config,
    ConfigError,
    LadderConfig,
    LadderReference,
    config_from_dict,
    dump_config,
    load_config,
)
from keisei.evaluation.ladder.play import climb
from keisei.evaluation.ladder.registry import LadderRegistry, StoredRating, read_agent_ratings
from keisei.evaluation.ladder.run import _warn_if_out_of_order, run_ladder
from keisei.evaluation.ladder.setup import select_references
from keisei.evaluation.ladder.stopping import Verdict
from keisei.evaluation.players.builtin import GreedyPlayer, RandomPlayer
from keisei.evaluation.players.usi import UsiPlayer
from keisei.evaluation.ratings.elo import EloRegistry
from tests.support.checkpoints import save_checkpoint
from tests.support.engines import fairy_stockfish

PNG = b"\x89PNG\r\n\x1a\n"


def stockfish(name: str, skill: int = -20, nodes: int = 1) -> LadderReference:
    return LadderReference(name=name, opponent=f"usi:{fairy_stockfish()}",
                           options={"Skill Level": str(skill)}, byoyomi_ms=None,
                           nodes=nodes)  # fmt: skip


def tiny_ladder(**changes: object) -> LadderConfig:
    """random, greedy and Fairy-Stockfish at one node a move; 4 short games each."""
    references = [
        LadderReference(name="random", opponent="random"),
        LadderReference(name="greedy", opponent="greedy"),
        stockfish("fairy-stockfish skill -20"),
    ]
    fields: dict[str, object] = {"references": references, "games_per_reference": 4,
                                 "max_plies": 30}  # fmt: skip
    return LadderConfig.model_validate(fields | changes)


def test_the_default_ladder_is_random_then_fairy_stockfish_by_skill_limited_by_nodes():
    ladder = Config().ladder
    assert [r.name for r in ladder.references] == [
        "random", "fairy-stockfish skill -20 (nodes 700)",
        *(f"fairy-stockfish skill {level} (nodes 10000)" for level in REFERENCE_SKILLS),
    ]  # fmt: skip
    assert {-20, -5, 0, 5} <= set(REFERENCE_SKILLS)  # the levels the targets name (-10: as -20)
    assert REFERENCE_NODES == 10_000
    minus_five = next(r for r in ladder.references if r.options == {"Skill Level": "-5"})
    assert (minus_five.nodes, minus_five.byoyomi_ms) == (REFERENCE_NODES, None)  # never by time
    assert all(r.byoyomi_ms is None for r in ladder.references)
    assert minus_five.opponent == "usi:/usr/games/fairy-stockfish"
    assert (ladder.games_per_reference, ladder.min_games) == (20, 6)


def test_bad_ladder_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"'ladder\.references\.0\.opponent' = 'stockfish'"):
        config_from_dict({"ladder": {"references": [{"name": "x", "opponent": "stockfish"}]}})
    with pytest.raises(ConfigError, match="options and nodes apply to usi: opponents only"):
        config_from_dict({"ladder": {"references": [
            {"name": "x", "opponent": "random", "options": {"Skill Level": "1"}}]}})  # fmt: skip
    with pytest.raises(ConfigError, match="names must differ: x repeated"):
        twice = [{"name": "x", "opponent": "random"}, {"name": "x", "opponent": "greedy"}]
        config_from_dict({"ladder": {"references": twice}})
    with pytest.raises(ConfigError, match="'ladder.games_per_reference' = 0"):
        config_from_dict({}, ["ladder.games_per_reference=0"])


def test_a_missing_engine_still_loads_but_cannot_be_played(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("ladder:\n  references:\n  - {name: random, opponent: random}\n"
                    "  - {name: ghost, opponent: 'usi:/nonexistent/engine'}\n")  # fmt: skip
    settings = load_config(path).ladder  # training with this config is not stopped by it
    assert select_references(settings, ["random"])[0].name == "random"
    with pytest.raises(
        ConfigError,
        match=r"'ghost' \('ladder\.references\.1\.opponent'\).*"
        "'/nonexistent/engine' is not an executable",
    ):
        select_references(settings)
    with pytest.raises(ConfigError, match="no reference named 'nobody'"):
        select_references(settings, ["nobody"])


def test_the_agent_passes_random_early(tmp_path: Path):
    settings = LadderConfig(references=[LadderReference(name="random", opponent="random")],
                            games_per_reference=20, max_plies=200)  # fmt: skip
    [rung] = climb(GreedyPlayer(1, name="greedy-agent"), [(settings.references[0],
                   RandomPlayer(2))], settings, tmp_path)  # fmt: skip
    assert rung.verdict is Verdict.PASSED and rung.early
    assert rung.score.games == 6 and rung.score.wins == 6
    assert rung.stopped == "passed early"
    assert [g.agent_color for g in rung.games] == ["black", "white"] * 3
    assert all(g.opponent == "random" for g in rung.games)
    kifs = sorted((tmp_path / "random").glob("*.kifu"))
    assert len(kifs) == 6 and len(list((tmp_path / "random").glob("*.csa"))) == 6
    assert kifs[0].name == "greedy-agent_vs_random_000.kifu"
    assert (tmp_path / "random" / "random_vs_greedy-agent_001.csa").is_file()
    assert [Path(g.record_path or "").name for g in rung.games][:2] == [
        "greedy-agent_vs_random_000.kifu", "random_vs_greedy-agent_001.kifu"]  # fmt: skip


def test_after_a_reference_it_cannot_reach_the_stronger_ones_are_skipped(tmp_path: Path):
    settings = tiny_ladder(games_per_reference=10, max_plies=200)
    greedy, engine = settings.references[1], settings.references[2]
    usi = UsiPlayer(engine.opponent, options=engine.options, byoyomi_ms=None, nodes=1)
    rungs = climb(RandomPlayer(3, name="random-agent"), [(greedy, GreedyPlayer(4)),
                  (engine, usi)], settings, tmp_path)  # fmt: skip
    assert rungs[0].verdict is Verdict.CANNOT_REACH
    assert rungs[0].score.losses == rungs[0].score.games == 6
    assert rungs[1].verdict is Verdict.SKIPPED and rungs[1].games == ()
    assert rungs[1].stopped == "skipped: the agent could not reach greedy"
    assert usi._engine is None  # never started
    assert not (tmp_path / "fairy-stockfish-skill--20").exists()


def test_reference_ratings_are_stored_once_and_kept_for_other_agents(tmp_path: Path):
    first = save_checkpoint(tmp_path / "runs" / "first", seed=0, step=128)
    second = save_checkpoint(tmp_path / "runs" / "second", seed=1, step=256)
    settings = tiny_ladder()
    one = run_ladder(first, settings.references, settings)
    assert one.registry == tmp_path / "runs" / "ladder.sqlite"
    with LadderRegistry(one.registry) as registry:
        stored = registry.stored()
    engine = "usi:fairy-stockfish Skill Level=-20 nodes=1"
    assert set(stored) == {"greedy", engine}  # random is the anchor, never stored
    assert {s.method for s in stored.values()} == {"joint"}
    assert stored["greedy"].games == 4 and stored["greedy"].low < stored["greedy"].high
    assert [r.rated for r in one.rungs] == ["anchor", "new, 4 games", "new, 4 games"]
    assert one.agent_rating is not None and one.agent == "first/step_000000128"
    assert one.plot.read_bytes().startswith(PNG)
    assert len(list(one.record_dir.rglob("*.kifu"))) == one.games == 12
    assert len(list(one.record_dir.rglob("*.csa"))) == 12

    two = run_ladder(second, settings.references, settings)
    with LadderRegistry(two.registry) as registry:
        assert registry.stored() == stored  # fixed across runs and agents
        assert len(registry.games()) == 24
    assert [r.rated for r in two.rungs] == ["anchor", "stored, 4 games", "stored, 4 games"]
    assert two.rungs[1].rating == stored["greedy"]
    assert two.agent_rating is not None

    # the run's own Elo database has the games and the ladder's rating of its agent
    with EloRegistry(tmp_path / "runs" / "second" / "elo.sqlite") as elo:
        assert len(elo.games()) == 12
        assert {g.subject for g in elo.games()} == {"second/step_000000256"}
    [row] = read_agent_ratings(tmp_path / "runs" / "second" / "elo.sqlite")
    assert row.agent == "second/step_000000256" and row.rating == two.agent_rating.rating

    three = run_ladder(second, settings.references, settings, refit=True)
    with LadderRegistry(three.registry) as registry:
        refitted = registry.stored()
    assert {s.method for s in refitted.values()} == {"refit"}
    assert refitted["greedy"].games == 12  # every stored game against it
    assert [r.rated for r in three.rungs][1:] == ["refit, 12 games", "refit, 12 games"]


def test_games_an_engine_lost_by_crashing_rate_nothing(tmp_path: Path):
    run = save_checkpoint(tmp_path / "runs" / "run", step=128)
    fake = Path(__file__).resolve().parents[1] / "support" / "fake_usi_engine.py"
    crashing = LadderReference(name="crashing", opponent=f"usi:{sys.executable} {fake} crash")
    settings = tiny_ladder(references=[tiny_ladder().references[0], crashing], max_plies=20,
                           games_per_reference=8)  # fmt: skip
    result = run_ladder(run, settings.references, settings)
    rung = result.rungs[1]
    assert rung.rung.engine_failures == rung.rung.score.wins == 6  # "passed" by default
    assert rung.rating is None and rung.rated == "unrated (engine failed)"
    assert result.agent_rating is not None and result.agent_rating.games == 8  # random's only
    with LadderRegistry(result.registry) as registry:
        assert registry.stored() == {}
        assert len(registry.games()) == 8  # the crashes are stored but left out of fits


def test_playouts_reach_the_checkpoint_player(tmp_path: Path):
    run = save_checkpoint(tmp_path / "runs" / "run", step=128)
    settings = tiny_ladder(games_per_reference=2, max_plies=8)
    result = run_ladder(run, settings.references[:1], settings, playouts=2)
    assert result.agent == "run/step_000000128+puct2"
    assert result.rungs[0].rung.score.games == 2


def test_a_ladder_without_random_or_a_rated_reference_is_refused(tmp_path: Path):
    run = save_checkpoint(tmp_path / "runs" / "run", step=128)
    settings = tiny_ladder()
    with pytest.raises(ConfigError, match="no scale"):
        run_ladder(run, settings.references[1:], settings)
    assert not (run / "games").exists()


def test_references_listed_out_of_strength_order_are_pointed_out(caplog: pytest.LogCaptureFixture):
    def rated(rating: float) -> StoredRating:
        return StoredRating("p", "l", rating, rating - 50, rating + 50, 10, "joint")

    with caplog.at_level(logging.WARNING, logger="keisei"):
        _warn_if_out_of_order([("a", rated(0)), ("b", rated(60)), ("c", rated(300))])
        assert not caplog.records  # a and b overlap: not clearly out of order
        _warn_if_out_of_order([("a", rated(0)), ("b", rated(300)), ("c", rated(100))])
    [record] = caplog.records
    assert "weakest first" in record.getMessage() and "'c' (Elo 100)" in record.getMessage()


def write_run(tmp_path: Path) -> Path:
    """A run directory with a checkpoint and a config.yaml holding a tiny ladder."""
    run = save_checkpoint(tmp_path / "runs" / "run", step=128)
    config = config_from_dict({"ladder": tiny_ladder(max_plies=24).model_dump(mode="json")})
    dump_config(config, run / "config.yaml")
    return run


@pytest.mark.slow
def test_keisei_ladder_on_a_run_prints_the_table_and_writes_everything(tmp_path: Path):
    run = write_run(tmp_path)
    command = [sys.executable, "-m", "keisei.cli"]
    done = subprocess.run([*command, "ladder", str(run), "--games", "2"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Ladder: run/step_000000128, up to 2 games a reference" in out
    for name in ("random", "greedy", "fairy-stockfish skill -20"):
        assert name in out
    assert "anchor" in out and "new, 2 games" in out and "all 2" in out
    assert "agent run/step_000000128: Elo" in out and "95% interval" in out
    assert "sequential test: after 6 games at a reference, stop once the score's 95%" in out
    [png] = run.glob("games/ladder-*/ladder.png")
    assert f"plot:    {png}" in out and png.read_bytes().startswith(PNG)
    assert len(list(png.parent.glob("*/*.kifu"))) == 6
    flat = " ".join(out.split())  # Rich wraps long lines before a path
    assert f"every game, in {tmp_path / 'runs' / 'ladder.sqlite'}" in flat
    assert "calibrated references from " in flat and "calibration.json" in flat

    ratings = subprocess.run([*command, "ratings", str(run)], capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert ratings.returncode == 0, ratings.stderr
    assert "ladder run/ladder-" in ratings.stdout and "run/step_000000128 Elo" in ratings.stdout


def test_bad_input_exits_2_naming_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["ladder", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such run directory or checkpoint" in capsys.readouterr().err

    run = write_run(tmp_path)
    override = "ladder.references=[{name: ghost, opponent: 'usi:/nonexistent/engine'}]"
    assert main(["ladder", str(run), "--set", override]) == 2
    err = capsys.readouterr().err
    assert "'ladder.references.0.opponent'" in err and "/nonexistent/engine" in err

    assert main(["ladder", str(run), "--references", "random,nobody"]) == 2
    assert "no reference named 'nobody'" in capsys.readouterr().err

    assert main(["ladder", str(run), "--games", "0"]) == 2
    assert "'ladder.games_per_reference' = 0" in capsys.readouterr().err
    assert not (run / "games").exists() and not (tmp_path / "runs" / "ladder.sqlite").exists()



def test_without_early_stop_every_reference_plays_every_game(tmp_path: Path):
    """With the sequential test the same ladder stops early or skips; without it, all 8 games at
    every reference and nothing skipped."""
    settings = tiny_ladder(games_per_reference=8, min_games=2, max_plies=256)
    stopping = run_ladder(write_run(tmp_path / "a"), settings.references, settings)
    assert [r.rung.score.games for r in stopping.rungs] != [8, 8, 8]
    settings = tiny_ladder(games_per_reference=8, min_games=2, max_plies=256, early_stop=False)
    every = run_ladder(write_run(tmp_path / "b"), settings.references, settings)
    assert [r.rung.score.games for r in every.rungs] == [8, 8, 8]
    assert all(r.rung.verdict is not Verdict.SKIPPED for r in every.rungs)
