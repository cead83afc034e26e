"""What the person watching sees: the live panel and the plain progress lines."""

from __future__ import annotations

import logging

import pytest
from rich.console import Console

from keisei.evaluation.result import EloSnapshot
from keisei.training.display import LiveDisplay, PlainDisplay, ProgressSnapshot

SNAPSHOT = ProgressSnapshot(
    step=4096,
    total_steps=8192,
    steps_per_second=512.0,
    losses={"ppo/policy_loss": -0.0123, "ppo/value_loss": 0.0456, "ppo/entropy": 3.21},
    games=12,
    black_wins=5,
    white_wins=4,
    draws=3,
    mean_game_length=187.0,
    end_reasons={"checkmate": 9, "max_plies": 3},
    evaluation="step 4096: 20 games, 15 W / 3 L / 2 D (win rate 75.0%)",
    elo=EloSnapshot(
        rating=321.0,
        opponent="random",
        last_outcome="win",
        top=(("agent@000004096", 321.0), ("random", 0.0)),
    ),  # fmt: skip
)


def test_live_panel_shows_progress_losses_games_and_elo():
    display = LiveDisplay()
    display.update(SNAPSHOT)
    console = Console(record=True, width=140)
    console.print(display._render())
    text = console.export_text()
    assert "4096/8192" in text
    assert "512 steps/s" in text
    assert "policy_loss -0.0123" in text and "value_loss 0.0456" in text
    assert "black 5, white 4, draws 3" in text and "mean length 187" in text
    assert "checkmate 9" in text
    assert "win rate 75.0%" in text
    assert "321 (last vs random: win)" in text


def test_plain_lines_carry_the_same_facts(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="keisei"):
        PlainDisplay().update(SNAPSHOT)
    line = caplog.records[-1].getMessage()
    assert "step 4096/8192 (512 steps/s, ETA 0:08)" in line
    assert "games 12: B 5 W 4 D 3" in line


def test_eta_is_unknown_before_any_speed_is_measured():
    assert ProgressSnapshot(step=0, total_steps=10, steps_per_second=0.0).eta_seconds == float(
        "inf"
    )
