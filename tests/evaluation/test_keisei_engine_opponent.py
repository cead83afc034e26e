"""A Keisei checkpoint with search, as a `usi:` opponent of the same checkpoint without."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from keisei.evaluation.standalone import evaluate_checkpoint
from tests.support.checkpoints import save_checkpoint


def test_the_keisei_usi_engine_is_an_evaluation_opponent(tmp_path: Path):
    run = save_checkpoint(tmp_path / "run", step=64)
    engine = " ".join(
        shlex.quote(part)
        for part in (sys.executable, "-m", "keisei.cli", "usi", "--checkpoint", str(run))
    )
    outcome = evaluate_checkpoint(
        run, f"usi:{engine}", 2, options={"Playouts": "16"}, max_plies=60, usi_byoyomi_ms=None,
        usi_nodes=16, usi_timeout_s=60,
    )  # fmt: skip
    result = outcome.result
    assert result.total_games == 2
    assert all(g.reason not in ("engine_crash", "engine_timeout", "illegal_move")
               for g in result.games)  # fmt: skip
    assert outcome.opponent.startswith("usi:python") and "Playouts=16" in outcome.opponent
