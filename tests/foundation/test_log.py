"""The logger: errors always reach console and file; metrics land in metrics.jsonl."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from keisei import log


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    log.detach_log_file()
    log.set_level("INFO")


def test_errors_reach_console_and_file_even_when_the_level_asks_for_less(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    log.set_level(logging.CRITICAL)
    path = log.attach_log_file(tmp_path / "train.log")
    logger = log.get_logger("callbacks")
    logger.warning("quiet warning")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("callback failed")
    text = path.read_text()
    assert "callback failed" in text
    assert "RuntimeError: boom" in text  # the traceback is kept
    assert "quiet warning" not in text
    err = capsys.readouterr().err
    assert "callback failed" in err
    assert "RuntimeError: boom" in err


def test_level_is_honoured_below_error(tmp_path: Path):
    log.set_level("WARNING")
    path = log.attach_log_file(tmp_path / "train.log")
    log.get_logger().info("hidden")
    log.get_logger().warning("shown")
    text = path.read_text()
    assert "shown" in text and "hidden" not in text


def test_attaching_a_new_log_file_moves_the_log(tmp_path: Path):
    first = log.attach_log_file(tmp_path / "a" / "train.log")
    log.get_logger().info("one")
    second = log.attach_log_file(tmp_path / "b" / "train.log")
    log.get_logger().info("two")
    assert "two" not in first.read_text()
    assert "two" in second.read_text()


def test_metrics_recorder_writes_jsonl_and_survives_a_failing_sink(tmp_path: Path):
    class BrokenSink:
        def write(self, metrics, step):
            raise OSError("sink down")

        def close(self):
            pass

    jsonl = log.JsonlSink(tmp_path / "metrics.jsonl")
    recorder = log.MetricsRecorder([BrokenSink(), jsonl])
    recorder.record({"train/loss": 0.5, "x": math.nan}, step=10)
    recorder.record({}, step=11)
    recorder.record({"train/loss": 0.25}, step=12)
    recorder.close()
    records = log.read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["train/loss"]) for r in records] == [(10, 0.5), (12, 0.25)]
    assert records[0]["x"] == "nan"
    assert recorder.latest["train/loss"] == 0.25
    assert math.isnan(recorder.latest["x"])
