"""The one scheduling rule: alignment to epochs and firing once per crossed multiple."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keisei.training.schedule import EveryNSteps, align_interval

logger = logging.getLogger("keisei.test-schedule")


def test_align_interval_rounds_up_to_whole_epochs_and_says_so(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO, logger="keisei"):
        assert align_interval(250, 100, "training.checkpoint_interval_timesteps", logger) == 300
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert messages == [
        "training.checkpoint_interval_timesteps = 250 is not a multiple of "
        "steps_per_epoch = 100; using 300"
    ]


def test_align_interval_leaves_aligned_values_alone_silently(caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.DEBUG, logger="keisei"):
        assert align_interval(300, 100, "x", logger) == 300
        assert align_interval(5, 1, "x", logger) == 5
    assert caplog.records == []


@pytest.mark.parametrize(("interval", "steps_per_epoch"), [(0, 100), (-5, 100), (100, 0)])
def test_align_interval_rejects_non_positive_values(interval: int, steps_per_epoch: int):
    with pytest.raises(ValueError, match="positive"):
        align_interval(interval, steps_per_epoch, "evaluation.interval", logger)


def test_aligned_interval_fires_at_every_multiple_when_steps_advance_by_epochs():
    # The original code tested `(step + 1) % interval == 0`, which never holds once the interval
    # is a multiple of steps_per_epoch and steps advance by whole epochs.
    interval = align_interval(250, 100, "x", logger)
    schedule = EveryNSteps(interval)
    fired = [step for step in range(100, 1501, 100) if schedule.due(step)]
    assert fired == [300, 600, 900, 1200, 1500]


def test_a_jump_over_several_multiples_fires_once_and_says_how_many():
    schedule = EveryNSteps(100)
    assert schedule.due(350)
    assert schedule.multiples_covered == 3
    assert not schedule.due(399)
    assert schedule.due(400)
    assert schedule.multiples_covered == 1


def test_state_round_trip_neither_repeats_nor_skips():
    first = EveryNSteps(100)
    assert [s for s in (50, 120, 180) if first.due(s)] == [120]
    resumed = EveryNSteps(100)
    resumed.load_state_dict(first.state_dict())
    resumed.start(180)  # a restored state is not re-anchored
    assert [s for s in (190, 200, 260, 300) if resumed.due(s)] == [200, 300]


def test_start_anchors_a_fresh_schedule_at_the_resume_step():
    schedule = EveryNSteps(100)
    schedule.start(450)
    assert not schedule.due(480)
    assert schedule.due(500)


@given(
    interval=st.integers(1, 500),
    increments=st.lists(st.integers(0, 1200), min_size=1, max_size=60),
)
def test_each_crossed_multiple_is_covered_by_exactly_one_firing(interval: int, increments: list):
    schedule = EveryNSteps(interval)
    step = 0
    covered = 0
    for increment in increments:
        previous = step
        step += increment
        crossed = step // interval - previous // interval
        fired = schedule.due(step)
        # Fires exactly when at least one new multiple was reached or crossed by this call...
        assert fired == (crossed > 0)
        if fired:
            assert schedule.multiples_covered == crossed
            covered += crossed
    # ...and over the whole run every multiple up to the last step is covered exactly once.
    assert covered == step // interval
