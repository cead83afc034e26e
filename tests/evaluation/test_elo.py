"""The SQLite Elo registry and maximum-likelihood ratings."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from keisei.evaluation.ratings.bradley_terry import expected_score, fit_ratings
from keisei.evaluation.ratings.elo import EloRegistry


def test_incremental_elo_keeps_the_anchor_fixed(tmp_path: Path):
    with EloRegistry(tmp_path / "elo.sqlite", k=32, anchor_rating=0.0) as registry:
        registry.ensure_player("random", "random")
        registry.ensure_player("agent", "agent", step=10)
        black, white = registry.record_game("agent", "random", 0, "checkmate", 80, step=10)
        assert black == pytest.approx(16.0)  # 32 * (1 - 0.5)
        assert white == 0.0
        registry.record_game("random", "agent", None, "max_plies", 512, step=10)
        assert registry.rating("random") == 0.0
        assert registry.rating("agent") < 16.0
        assert [g.result for g in registry.games()] == ["black", "draw"]
        assert registry.top(1) == [("agent", registry.rating("agent"))]
        with pytest.raises(KeyError, match="unknown players"):
            registry.record_game("agent", "ghost", 0, "checkmate", 10)


def _writer(path: str, name: str, count: int) -> None:
    with EloRegistry(path) as registry:
        registry.ensure_player("random", "random")
        registry.ensure_player(name, "agent")
        for i in range(count):
            registry.record_game(name, "random", i % 2, "checkmate", i + 1)


def test_two_processes_writing_at_once_lose_no_game(tmp_path: Path):
    path = str(tmp_path / "elo.sqlite")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(path, f"p{i}", 150)) for i in range(2)]
    for process in writers:
        process.start()
    _writer(path, "main", 150)  # and this process too
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    with EloRegistry(path) as registry:
        games = registry.games()
        assert len(games) == 450
        assert {p.name: p.games for p in registry.players()} == {
            "random": 450, "p0": 150, "p1": 150, "main": 150,
        }  # fmt: skip


def test_bradley_terry_recovers_known_strengths():
    rng = np.random.default_rng(7)
    truth = {"random": 0.0, "a": 200.0, "b": 400.0, "c": 800.0}
    names = list(truth)
    games = []
    for _ in range(3000):
        i, j = rng.choice(len(names), size=2, replace=False)
        a, b = names[i], names[j]
        p = expected_score(truth[a], truth[b])
        draw = min(0.1, 2 * min(p, 1 - p))  # draws, keeping the expected score at p
        u = rng.random()
        score = 1.0 if u < p - draw / 2 else 0.5 if u < p + draw / 2 else 0.0
        games.append((a, b, score))
    fitted = fit_ratings(games, anchor="random")
    assert fitted["random"].rating == 0.0
    for name in ("a", "b", "c"):
        estimate = fitted[name]
        assert estimate.low < estimate.rating < estimate.high
        assert abs(estimate.rating - truth[name]) < 60, (name, estimate)
    assert fitted["a"].rating < fitted["b"].rating < fitted["c"].rating


def test_a_perfect_record_stays_finite():
    fitted = fit_ratings([("a", "random", 1.0)] * 10, anchor="random")
    assert 0 < fitted["a"].rating < 3000
    assert fitted["a"].high - fitted["a"].low > 0
