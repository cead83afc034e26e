"""`keisei train --callback package.module:ClassName` and `callbacks.extra` in the config: a
user's callback from a module on PYTHONPATH runs; a bad entry stops the run before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keisei.cli import main
from keisei.config import ConfigError
from keisei.log import read_metrics
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer
from tests.support.tiny_config import TINY

MODULE = '''
import json
from keisei.training.callbacks import AsyncCallback, Callback


class Marker(Callback):
    """Reports a metric every epoch and writes a file when training ends."""

    def __init__(self, label: str = "plain") -> None:
        super().__init__()
        self.label = label
        self.steps = []

    def on_step_end(self, trainer):
        self.steps.append(trainer.global_timestep)
        return {"user/epochs_seen": float(len(self.steps))}

    def on_train_end(self, trainer):
        (trainer.run_dir / f"marker-{self.label}.json").write_text(json.dumps(self.steps))


class AsyncMarker(AsyncCallback):
    async def on_step_end_async(self, trainer):
        return {"user/async_step": float(trainer.global_timestep)}


class NotACallback:
    pass


class Misspelled(Callback):
    def on_step_edn(self, trainer):
        pass
'''


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "site" / "mypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return tmp_path / "site"


def train_args(tmp_path: Path, name: str, *extra: str) -> list[str]:
    """The arguments of `keisei train` for a tiny run."""
    args = ["train", "--no-live", "--run-name", name]
    for override in [*TINY, f"logging.model_dir={tmp_path}", "training.total_timesteps=128"]:
        args += ["--set", override]
    return [*args, *extra]


def train_command(tmp_path: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "keisei.cli", *train_args(tmp_path, name, *extra)]


def test_keisei_train_runs_a_callback_named_on_the_command_line(tmp_path: Path, user_package: Path):
    env = {**os.environ, "PYTHONPATH": f"{user_package}{os.pathsep}{os.getcwd()}"}
    result = subprocess.run(
        train_command(tmp_path, "cli", "--callback", "mypkg.mod:Marker",
                      "--callback", "mypkg.mod:AsyncMarker"),
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = tmp_path / "cli"
    assert json.loads((run / "marker-plain.json").read_text()) == [64, 128]
    records = read_metrics(run / "metrics.jsonl")
    assert [r["user/epochs_seen"] for r in records if "user/epochs_seen" in r] == [1.0, 2.0]
    assert [r["user/async_step"] for r in records if "user/async_step" in r] == [64.0, 128.0]
    # The run's saved config keeps them, so a resume attaches them again.
    assert "mypkg.mod:Marker" in (run / "config.yaml").read_text()


def test_config_entries_take_keyword_arguments_and_a_schedule(tmp_path: Path, user_package: Path):
    entry = "{target: 'mypkg.mod:Marker', kwargs: {label: configured}, every: 128}"
    plan = plan_run(
        None, [*TINY, f"logging.model_dir={tmp_path}", f"callbacks.extra=[{entry}]"], "cfg", None
    )
    Trainer(plan).train()
    assert json.loads((tmp_path / "cfg" / "marker-configured.json").read_text()) == [128, 256]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mypkg.mod:Nope", "defines no class 'Nope'"),
        ("mypkg.nomodule:Marker", "cannot import module 'mypkg.nomodule'"),
        ("mypkg.mod:NotACallback", "not a subclass of Callback or AsyncCallback"),
        ("mypkg.mod:Misspelled", "on_step_edn is not a hook"),
        ("not a target", "is not of the form package.module:ClassName"),
    ],
)
def test_a_bad_entry_fails_before_any_work_naming_it(
    tmp_path: Path,
    user_package: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
    message: str,
):
    # The `keisei train` command line, in this process (the command itself, with the user's
    # package on PYTHONPATH, is the test above): the same exit code and the same stderr.
    code = main(train_args(tmp_path, "bad", "--callback", target))
    err = capsys.readouterr().err
    assert code == 2, err
    assert target in err and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def test_bad_keyword_arguments_are_a_config_error(tmp_path: Path, user_package: Path):
    entry = "{target: 'mypkg.mod:Marker', kwargs: {colour: red}}"
    plan = plan_run(None, [*TINY, f"logging.model_dir={tmp_path}", f"callbacks.extra=[{entry}]"],
                    "kw", None)  # fmt: skip
    with pytest.raises(ConfigError, match=r"callbacks.extra\[0\] = 'mypkg.mod:Marker'.*colour"):
        Trainer(plan)
    assert not (tmp_path / "kw").exists()


def test_the_readme_example_callback_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`PYTHONPATH=examples keisei train --callback game_log:GameLog` (README)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    entry = "{target: 'game_log:GameLog', kwargs: {every: 128}}"
    plan = plan_run(
        None, [*TINY, f"logging.model_dir={tmp_path}", f"callbacks.extra=[{entry}]"], "ex", None
    )
    Trainer(plan).train()
    rows = (tmp_path / "ex" / "games.csv").read_text().splitlines()
    assert rows[0] == "step,games,black_wins,white_wins,draws"
    assert [row.split(",")[0] for row in rows[1:]] == ["128", "256"]
    shares = [r["custom/decisive_share"] for r in read_metrics(tmp_path / "ex" / "metrics.jsonl")
              if "custom/decisive_share" in r]  # fmt: skip
    assert len(shares) == 2 and all(0.0 <= share <= 1.0 for share in shares)
