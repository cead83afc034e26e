from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from keisei.evaluation.players.usi_client import UsiEngine
from tests.support.checkpoints import save_checkpoint
from tests.usi.helpers import QUIT_S, REPO, engine_env, keisei_command


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding one checkpoint of an untrained tiny network."""
    return save_checkpoint(tmp_path_factory.mktemp("usi") / "run")


@pytest.fixture(scope="module")
def engine(run_dir: Path) -> Iterator[UsiEngine]:
    """`keisei usi` on that checkpoint, in its own process (one per test module)."""
    with UsiEngine(
        keisei_command("usi", "--checkpoint", str(run_dir)),
        name="keisei",
        cwd=REPO,
        env=engine_env(),
        startup_timeout_s=120,
    ) as engine:
        yield engine
        engine.quit(timeout_s=QUIT_S)
    assert engine.returncode == 0


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The tiny networks here run fastest on one thread (and do not fight other processes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
