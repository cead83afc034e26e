"""Leaving the world frees the process group: after `World.close` no thread of gloo is left
(two real ranks, gloo on CPU).

Left alive, the group was torn down only by the interpreter's finalization (DDP's reference
cycles, and `torch.distributed.nn.functional`, imported lazily during training, kept it), and a
gloo thread ended there could abort the process after training had finished ("terminate called
without an active exception").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from keisei.training.ranks.launch import free_port
from tests.support.ranks import keisei_env

GLOO_THREADS = ("pt_gloo_runloop", "gloo_tcp_loop")


def test_no_gloo_thread_outlives_world_close(tmp_path: Path):
    port = str(free_port())
    ranks = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.closing_rank", str(tmp_path)],
            env=keisei_env(
                RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port
            ),  # fmt: skip
        )
        for rank in range(2)
    ]
    assert [rank.wait(timeout=120) for rank in ranks] == [0, 0]
    for rank in range(2):
        threads = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert not [name for name in threads if name in GLOO_THREADS], (rank, threads)
