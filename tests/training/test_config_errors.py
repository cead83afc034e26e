"""Configuration mistakes stop `keisei train` before the run directory exists: exit 2, one line
naming the key or the file, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from keisei.cli import main

REPO = Path(__file__).resolve().parents[2]
CPU_ONLY = not torch.cuda.is_available()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set", "training.device=warp-drive"], "'training.device' = 'warp-drive'"),
        pytest.param(
            ["--set", "training.device=cuda"],
            "'training.device' = 'cuda'",
            marks=pytest.mark.skipif(not CPU_ONLY, reason="CUDA is here"),
        ),  # fmt: skip
        pytest.param(
            ["--config", str(REPO / "configs" / "gpu.yaml")],
            "'training.device' = 'cuda'",
            marks=pytest.mark.skipif(not CPU_ONLY, reason="CUDA is here"),
        ),  # fmt: skip
        (["--config", "{tmp}"], "is a directory"),
        (["--config", "{tmp}/binary.yaml"], "is not a text (YAML) file"),
        (["--set", "evaluation.opponents=[radnom]"], "'evaluation.opponents.0' = 'radnom'"),
        (["--set", "evaluation.opponents=[usi:/no/such/engine]"], "'/no/such/engine' is not an"),
        (["--set", "evaluation.opponents=[checkpoint:{tmp}]"], "no complete checkpoint in"),
        (["--set", "evaluation.opponents=[checkpoint:{tmp}/gone]"], "does not exist"),
    ],
)
def test_a_config_mistake_stops_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], named: str
):
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    runs = tmp_path / "runs"
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    code = main(["train", "--no-live", "--run-name", "r", "--set", f"logging.model_dir={runs}",
                 *args])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not runs.exists()
